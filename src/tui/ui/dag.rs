//! A workflow's task DAG drawn as boxes and edges, top-down, one row of boxes per layer (a
//! task sits one layer below its deepest dependency). Edges leave a box at the middle of its
//! bottom border and enter the next layer's boxes at the middle of their top border; the edges
//! of one gap share a line, so a fan-in or fan-out reads as one junction. When it cannot be
//! drawn unambiguously in the space given (an edge skipping a layer, two separate groups of
//! edges crossing in one gap, too wide or too tall), the caller draws an indented tree.

use std::collections::BTreeMap;

use ratatui::style::Style;
use ratatui::text::{Line, Span};

use crate::model::Workflow;

const UP: u8 = 1;
const DOWN: u8 = 2;
const LEFT: u8 = 4;
const RIGHT: u8 = 8;

fn line_char(mask: u8) -> char {
    match mask {
        m if m == UP | DOWN | LEFT | RIGHT => '┼',
        m if m == UP | DOWN | RIGHT => '├',
        m if m == UP | DOWN | LEFT => '┤',
        m if m == DOWN | LEFT | RIGHT => '┬',
        m if m == UP | LEFT | RIGHT => '┴',
        m if m == DOWN | RIGHT => '┌',
        m if m == DOWN | LEFT => '┐',
        m if m == UP | RIGHT => '└',
        m if m == UP | LEFT => '┘',
        m if m & (UP | DOWN) != 0 && m & (LEFT | RIGHT) == 0 => '│',
        m if m != 0 => '─',
        _ => ' ',
    }
}

/// The DAG as lines at most `width` wide and `height` tall, each task's box holding the label
/// and style `label_of` gives it; None when it does not fit or would be ambiguous.
pub fn boxes(
    w: &Workflow,
    width: usize,
    height: usize,
    label_of: impl Fn(&str) -> (String, Style),
) -> Option<Vec<Line<'static>>> {
    // Layers: one below the deepest dependency (tasks are acyclic once validated).
    let mut layer: BTreeMap<&str, usize> = BTreeMap::new();
    for _ in 0..=w.tasks.len() {
        for t in &w.tasks {
            let deps: Option<Vec<usize>> = t
                .depends
                .iter()
                .map(|d| layer.get(d.as_str()).copied())
                .collect();
            if let Some(deps) = deps {
                let at = deps.iter().max().map_or(0, |m| m + 1);
                layer.insert(t.id.as_str(), at);
            }
        }
    }
    if layer.len() != w.tasks.len() {
        return None;
    }
    let layers = layer.values().max().map_or(0, |m| m + 1);
    let mut rows: Vec<Vec<&str>> = vec![Vec::new(); layers];
    for t in &w.tasks {
        rows[layer[t.id.as_str()]].push(t.id.as_str());
    }
    let tall = layers * 3 + layers.saturating_sub(1) * 2;
    if tall > height {
        return None;
    }
    // Box positions: (x of the left border, width) per task, layers left-aligned.
    let labels: BTreeMap<&str, (String, Style)> = w
        .tasks
        .iter()
        .map(|t| (t.id.as_str(), label_of(t.id.as_str())))
        .collect();
    let mut place: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for (l, row) in rows.iter().enumerate() {
        let mut x = 0;
        for id in row {
            let bw = labels[id].0.chars().count() + 4;
            place.insert(id, (x, bw, l * 5));
            x += bw + 1;
        }
        if x.saturating_sub(1) > width {
            return None;
        }
    }
    let wide = place.values().map(|(x, bw, _)| x + bw).max().unwrap_or(0);
    let mut masks = vec![vec![0u8; wide]; tall];
    let mut text: Vec<Vec<Option<(char, Style)>>> = vec![vec![None; wide]; tall];
    // Edges, gap by gap: the groups of one gap (joined through shared tasks) must not overlap.
    for gap in 0..layers.saturating_sub(1) {
        let edges: Vec<(&str, &str)> = w
            .tasks
            .iter()
            .filter(|t| layer[t.id.as_str()] == gap + 1)
            .flat_map(|t| t.depends.iter().map(move |d| (d.as_str(), t.id.as_str())))
            .collect();
        if edges.iter().any(|(d, _)| layer[d] != gap) {
            return None;
        }
        let mid = |id: &str| place[id].0 + place[id].1 / 2;
        // Groups: tasks joined by an edge, by union-find over task names.
        let mut group: BTreeMap<&str, &str> = BTreeMap::new();
        fn root<'a>(group: &BTreeMap<&'a str, &'a str>, mut at: &'a str) -> &'a str {
            while let Some(up) = group.get(at).filter(|up| **up != at) {
                at = up;
            }
            at
        }
        for (d, t) in &edges {
            group.entry(d).or_insert(d);
            group.entry(t).or_insert(t);
            let (a, b) = (root(&group, d), root(&group, t));
            group.insert(a, b);
        }
        let mut spans: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for (d, t) in &edges {
            let r = root(&group, d);
            let (lo, hi) = (mid(d).min(mid(t)), mid(d).max(mid(t)));
            let span = spans.entry(r).or_insert((lo, hi));
            *span = (span.0.min(lo), span.1.max(hi));
        }
        let mut sorted: Vec<(usize, usize)> = spans.values().copied().collect();
        sorted.sort_unstable();
        if sorted.windows(2).any(|p| p[1].0 <= p[0].1) {
            return None;
        }
        let (bus, into) = (gap * 5 + 3, gap * 5 + 4);
        for (d, t) in &edges {
            let (xs, xt) = (mid(d), mid(t));
            masks[bus][xs] |= UP;
            masks[bus][xt] |= DOWN;
            masks[into][xt] |= UP | DOWN;
            for x in xs.min(xt)..xs.max(xt) {
                masks[bus][x] |= RIGHT;
                masks[bus][x + 1] |= LEFT;
            }
        }
    }
    let has_children = |id: &str| {
        w.tasks
            .iter()
            .any(|t| t.depends.iter().any(|d| d.as_str() == id))
    };
    for (id, (x, bw, y)) in &place {
        let plain = Style::default();
        for i in 0..*bw {
            let (top, bottom) = match i {
                0 => ('┌', '└'),
                i if i == bw - 1 => ('┐', '┘'),
                i if i == bw / 2 => (
                    if *y > 0 { '┴' } else { '─' },
                    if has_children(id) { '┬' } else { '─' },
                ),
                _ => ('─', '─'),
            };
            text[*y][x + i] = Some((top, plain));
            text[y + 2][x + i] = Some((bottom, plain));
        }
        text[y + 1][*x] = Some(('│', plain));
        text[y + 1][x + bw - 1] = Some(('│', plain));
        let (label, style) = &labels[id];
        for (i, c) in label.chars().enumerate() {
            text[y + 1][x + 2 + i] = Some((c, *style));
        }
    }
    let lines = (0..tall)
        .map(|y| {
            let mut spans: Vec<Span<'static>> = Vec::new();
            let mut run = String::new();
            let mut style = Style::default();
            for x in 0..wide {
                let (c, s) = text[y][x].unwrap_or((line_char(masks[y][x]), Style::default()));
                if s != style && !run.is_empty() {
                    spans.push(Span::styled(std::mem::take(&mut run), style));
                }
                style = s;
                run.push(c);
            }
            spans.push(Span::styled(run.trim_end().to_owned(), style));
            Line::from(spans)
        })
        .collect();
    Some(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow(tasks: &str) -> Workflow {
        let yaml = format!("name: W\ntasks:\n{tasks}");
        let parsed = crate::workflow::parse::parse_workflow(
            crate::model::WorkflowId::new("w"),
            std::path::Path::new("w.yml"),
            &yaml,
        );
        parsed
            .workflow
            .unwrap_or_else(|| panic!("{:?}", parsed.diagnostics))
    }

    fn text(lines: &[Line]) -> String {
        lines
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    const T: &str = "config: !Shell {script: 'true'}";

    fn plain(id: &str) -> (String, Style) {
        (id.to_owned(), Style::default())
    }

    #[test]
    fn a_fan_in_then_a_chain() {
        let w = workflow(&format!(
            "  a: {{name: A, {T}}}\n  bb: {{name: B, {T}}}\n  \
             c: {{name: C, depends: [a, bb], {T}}}\n  d: {{name: D, depends: [c], {T}}}\n"
        ));
        let lines = boxes(&w, 40, 40, plain).unwrap_or_default();
        let expected = "\
┌───┐ ┌────┐
│ a │ │ bb │
└─┬─┘ └──┬─┘
  ├──────┘
  │
┌─┴─┐
│ c │
└─┬─┘
  │
  │
┌─┴─┐
│ d │
└───┘";
        assert_eq!(text(&lines), expected);
    }

    #[test]
    fn too_narrow_or_skipping_a_layer_is_left_to_the_tree() {
        let chain = workflow(&format!(
            "  first: {{name: A, {T}}}\n  second: {{name: B, depends: [first], {T}}}\n"
        ));
        assert!(boxes(&chain, 40, 40, plain).is_some());
        assert!(boxes(&chain, 5, 40, plain).is_none());
        assert!(boxes(&chain, 40, 4, plain).is_none());
        let skip = workflow(&format!(
            "  a: {{name: A, {T}}}\n  b: {{name: B, depends: [a], {T}}}\n  \
             c: {{name: C, depends: [a, b], {T}}}\n"
        ));
        assert!(boxes(&skip, 40, 40, plain).is_none());
    }
}
