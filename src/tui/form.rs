//! Text input and the trigger form: a workflow's parameters with their defaults filled in,
//! each checked as it is typed (required, choices, pattern) with the error beside it.

use std::collections::BTreeMap;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::model::Workflow;

/// One line of text being typed, with a cursor (in characters).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Input {
    pub text: String,
    pub cursor: usize,
}

impl Input {
    pub fn with(text: &str) -> Input {
        Input {
            text: text.to_owned(),
            cursor: text.chars().count(),
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        self.text
            .char_indices()
            .nth(char_index)
            .map_or(self.text.len(), |(b, _)| b)
    }

    /// Applies an editing key; false when the key is not an editing key.
    pub fn edit(&mut self, key: KeyEvent) -> bool {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('u') if ctrl => {
                self.text.clear();
                self.cursor = 0;
            }
            KeyCode::Char('w') if ctrl => {
                let end = self.byte(self.cursor);
                let start = self.text[..end].trim_end().rfind(' ').map_or(0, |i| i + 1);
                self.text.replace_range(start..end, "");
                self.cursor = self.text[..start].chars().count();
            }
            KeyCode::Char(c) if !ctrl => {
                let at = self.byte(self.cursor);
                self.text.insert(at, c);
                self.cursor += 1;
            }
            KeyCode::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                let at = self.byte(self.cursor);
                self.text.remove(at);
            }
            KeyCode::Delete if self.cursor < self.text.chars().count() => {
                let at = self.byte(self.cursor);
                self.text.remove(at);
            }
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(self.text.chars().count()),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = self.text.chars().count(),
            KeyCode::Backspace | KeyCode::Delete => {}
            _ => return false,
        }
        true
    }
}

/// One parameter of the form.
#[derive(Clone, Debug)]
pub struct Field {
    pub name: String,
    pub input: Input,
    pub hint: String,
    pub error: Option<String>,
}

/// The trigger form of a workflow.
#[derive(Clone, Debug)]
pub struct Form {
    pub workflow: Workflow,
    pub fields: Vec<Field>,
    pub focus: usize,
}

impl Form {
    pub fn new(workflow: Workflow) -> Form {
        let fields = workflow
            .params
            .iter()
            .map(|(name, p)| {
                let mut hint = p.description.clone().unwrap_or_default();
                if !p.choices.is_empty() {
                    hint = format!("{hint} [{}]", p.choices.join("|"))
                        .trim()
                        .to_owned();
                }
                Field {
                    name: name.clone(),
                    input: Input::with(p.default.as_deref().unwrap_or("")),
                    hint,
                    error: None,
                }
            })
            .collect();
        let mut form = Form {
            workflow,
            fields,
            focus: 0,
        };
        form.check();
        form
    }

    /// Checks every field; true when all are valid.
    pub fn check(&mut self) -> bool {
        let mut ok = true;
        for field in &mut self.fields {
            let Some(param) = self.workflow.params.get(&field.name) else {
                continue;
            };
            field.error = if field.input.text.is_empty() && param.default.is_none() {
                Some("required".into())
            } else {
                param.check(&field.input.text).err()
            };
            ok &= field.error.is_none();
        }
        ok
    }

    /// The values to send: every field (a default kept as it is is sent too, which the
    /// principal treats the same).
    pub fn values(&self) -> BTreeMap<String, String> {
        self.fields
            .iter()
            .map(|f| (f.name.clone(), f.input.text.clone()))
            .collect()
    }

    pub fn move_focus(&mut self, delta: isize) {
        if self.fields.is_empty() {
            return;
        }
        let n = self.fields.len() as isize;
        self.focus = (self.focus as isize + delta).rem_euclid(n) as usize;
    }

    /// Types into the focused field and checks it again.
    pub fn edit(&mut self, key: KeyEvent) -> bool {
        let Some(field) = self.fields.get_mut(self.focus) else {
            return false;
        };
        let edited = field.input.edit(key);
        if edited {
            self.check();
        }
        edited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn input_edits_at_the_cursor_with_multibyte_text() {
        let mut input = Input::with("héllo");
        input.edit(key(KeyCode::Left));
        input.edit(key(KeyCode::Backspace));
        input.edit(key(KeyCode::Char('ł')));
        assert_eq!(input.text, "hélło");
        input.edit(key(KeyCode::Home));
        input.edit(key(KeyCode::Delete));
        assert_eq!(input.text, "élło");
        input.edit(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        assert_eq!(input, Input::default());
    }

    #[test]
    fn the_form_fills_defaults_and_checks_as_typed() {
        let yaml = "name: W\nparams:\n  env: {default: dev, choices: [dev, prod]}\n  day: {pattern: '[0-9]{4}-[0-9]{2}-[0-9]{2}'}\n\
                    tasks:\n  t: {name: T, config: !Shell {script: 'true'}}\n";
        let parsed = crate::workflow::parse::parse_workflow(
            crate::model::WorkflowId::new("w"),
            std::path::Path::new("w.yml"),
            yaml,
        );
        let workflow = parsed
            .workflow
            .unwrap_or_else(|| panic!("{:?}", parsed.diagnostics));
        let mut form = Form::new(workflow);
        assert_eq!(form.fields[1].input.text, "dev");
        assert_eq!(form.fields[0].error.as_deref(), Some("required"));
        assert!(!form.check());
        for c in "2026-12-0".chars() {
            form.edit(key(KeyCode::Char(c)));
        }
        assert!(form.fields[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("pattern")));
        form.edit(key(KeyCode::Char('7')));
        assert!(form.check());
        form.move_focus(1);
        form.edit(key(KeyCode::Char('x')));
        assert!(form.fields[1]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("not one of")));
        form.move_focus(1);
        assert_eq!(form.focus, 0, "focus wraps");
    }
}
