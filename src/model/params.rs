//! Run parameters: declarations (default, `choices`, `pattern`), resolving a run's values,
//! and substituting them into task configs (shell-quoted in `!Shell` scripts).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Workflow;

/// A declared parameter: given to tasks as `CDKTR_PARAM_<NAME>` and `{{ params.name }}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Param {
    /// Used when a trigger does not give a value; without one the parameter is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A regular expression the whole value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The values allowed (any when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
}

impl Param {
    /// Why `value` is not allowed for this parameter, if it is not.
    pub fn check(&self, value: &str) -> Result<(), String> {
        if !self.choices.is_empty() && !self.choices.iter().any(|c| c == value) {
            return Err(format!(
                "{value:?} is not one of {}",
                self.choices.join(", ")
            ));
        }
        if let Some(pattern) = &self.pattern {
            let matches = whole_match(pattern)
                .map_err(|e| format!("its pattern `{pattern}` is not a regular expression: {e}"))?
                .is_match(value);
            if !matches {
                return Err(format!("{value:?} does not match the pattern `{pattern}`"));
            }
        }
        Ok(())
    }
}

/// `pattern` compiled to match a whole value, not a part of it. The pattern must be a regular
/// expression by itself first: `a)|(b` would otherwise close the anchoring group and match
/// almost anything.
pub fn whole_match(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(pattern)?;
    regex::Regex::new(&format!("^(?:{pattern})$"))
}

impl Workflow {
    /// The parameter values of a run: `given` over the declared defaults. Errors name an
    /// undeclared or missing parameter.
    pub fn resolve_params(
        &self,
        given: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String> {
        if let Some(unknown) = given.keys().find(|k| !self.params.contains_key(*k)) {
            let declared: Vec<&str> = self.params.keys().map(String::as_str).collect();
            return Err(if declared.is_empty() {
                format!(
                    "`{unknown}` is not a parameter of workflow `{}` (it declares none)",
                    self.id
                )
            } else {
                format!(
                    "`{unknown}` is not a parameter of workflow `{}` (declared: {})",
                    self.id,
                    declared.join(", ")
                )
            });
        }
        let mut values = BTreeMap::new();
        for (name, spec) in &self.params {
            match given.get(name).or(spec.default.as_ref()) {
                Some(v) => {
                    if v.contains('\0') {
                        return Err(format!(
                            "parameter `{name}`: a value cannot contain a NUL byte"
                        ));
                    }
                    spec.check(v)
                        .map_err(|e| format!("parameter `{name}`: {e}"))?;
                    values.insert(name.clone(), v.clone());
                }
                None => {
                    return Err(format!(
                        "parameter `{name}` of workflow `{}` has no default: give a value",
                        self.id
                    ))
                }
            }
        }
        Ok(values)
    }
}

/// Replaces `{{ params.name }}` (spaces optional) with the parameter's value. Plain text
/// substitution: nothing is evaluated. Unknown names are left as written (validation rejects
/// them when the workflow loads).
pub fn substitute(text: &str, params: &BTreeMap<String, String>) -> String {
    substitute_with(text, params, str::to_owned)
}

/// A value as one shell word: in single quotes, each `'` written as `'\''`. Inside single
/// quotes a POSIX shell treats every byte literally (`$`, backquotes, `\`, newlines).
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// `substitute`, with each value passed through `render` first.
pub(super) fn substitute_with(
    text: &str,
    params: &BTreeMap<String, String>,
    render: impl Fn(&str) -> String,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        let inner = rest[start + 2..start + len].trim();
        let value = inner
            .strip_prefix("params.")
            .and_then(|name| params.get(name.trim()));
        out.push_str(&rest[..start]);
        match value {
            Some(v) => out.push_str(&render(v)),
            None => out.push_str(&rest[start..start + len + 2]),
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// The parameter names a text refers to with `{{ params.name }}`.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        if let Some(name) = rest[start + 2..start + len].trim().strip_prefix("params.") {
            names.push(name.trim().to_owned());
        }
        rest = &rest[start + len + 2..];
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TaskConfig;

    #[test]
    fn substitution_is_plain_text() {
        let params = BTreeMap::from([
            ("day".to_owned(), "mon".to_owned()),
            ("n".to_owned(), "$(rm -rf /)".to_owned()),
        ]);
        assert_eq!(
            substitute("d={{ params.day }} {{params.n}}", &params),
            "d=mon $(rm -rf /)"
        );
        assert_eq!(
            substitute("{{ params.nope }} {{ other }} {{", &params),
            "{{ params.nope }} {{ other }} {{"
        );
        assert_eq!(
            placeholders("a {{ params.x }} b {{params.y}} {{ z }}"),
            ["x", "y"]
        );
    }

    #[test]
    fn shell_scripts_get_each_value_as_one_quoted_word() {
        assert_eq!(shell_quote("plain"), "'plain'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(x) `y` \\ \n"), "'$(x) `y` \\ \n'");
        let params = BTreeMap::from([("v".to_owned(), "'; touch PWNED; '".to_owned())]);
        let shell = TaskConfig::Shell {
            script: "echo {{ params.v }}".into(),
            shell: None,
            env: BTreeMap::from([("V".to_owned(), "{{ params.v }}".to_owned())]),
            cwd: None,
        };
        let TaskConfig::Shell { script, env, .. } = shell.with_params(&params) else {
            panic!("still a shell task");
        };
        assert_eq!(script, r"echo ''\''; touch PWNED; '\'''");
        // Environment values and program arguments never pass through a shell: exact bytes.
        assert_eq!(env["V"], "'; touch PWNED; '");
        let sub = TaskConfig::Subprocess {
            cmd: "printf".into(),
            args: vec!["{{ params.v }}".into()],
            env: BTreeMap::new(),
            cwd: None,
        };
        let TaskConfig::Subprocess { args, .. } = sub.with_params(&params) else {
            panic!("still a subprocess");
        };
        assert_eq!(args, ["'; touch PWNED; '"]);
    }

    #[test]
    fn choices_and_patterns_match_whole_values() {
        let env = Param {
            choices: vec!["staging".into(), "prod".into()],
            ..Param::default()
        };
        assert!(env.check("prod").is_ok());
        assert!(env
            .check("production")
            .unwrap_err()
            .contains("is not one of staging, prod"));
        let tag = Param {
            pattern: Some("v[0-9]+".into()),
            ..Param::default()
        };
        assert!(tag.check("v12").is_ok());
        for bad in ["v12; rm -rf /", "xv12", "v", "v12\n"] {
            assert!(tag.check(bad).is_err(), "{bad:?}");
        }
        // Alternation is anchored as a whole too.
        let either = Param {
            pattern: Some("a|b".into()),
            ..Param::default()
        };
        assert!(either.check("ab").is_err());
        assert!(either.check("b").is_ok());
        // A pattern that would break out of the anchoring is not a pattern.
        let escaping = Param {
            pattern: Some("a)|(b".into()),
            ..Param::default()
        };
        assert!(escaping.check("anything").is_err());
    }
}
