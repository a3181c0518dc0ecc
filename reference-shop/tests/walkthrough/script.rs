//! The README's shell blocks, read as the test runs them: a block is found by the HTML comment
//! above it (`<!-- tested by reference-shop/tests/readme_walkthrough.rs: NAME -->`), split into
//! steps (one command each: continued lines joined, a `for ... done` loop kept whole), each
//! with its comment; a comment is a list of expected answers, the `"key": value` pairs it
//! quotes.

use serde_json::Value;

/// The marker above a tested block, up to its name.
const MARKER: &str = "<!-- tested by reference-shop/tests/readme_walkthrough.rs: ";

/// The text of the shell block named `name` (its lines, without the fences).
///
/// # Panics
/// No such block, or the marker is not followed by a ```` ```sh ```` fence.
pub fn block(readme: &str, name: &str) -> String {
    let marker = format!("{MARKER}{name} -->");
    let mut lines = readme.lines().skip_while(|l| l.trim() != marker);
    assert!(lines.next().is_some(), "README.md has no block marked {marker:?}");
    assert_eq!(lines.next().map(str::trim), Some("```sh"), "a ```sh block must follow {marker:?}");
    let body: Vec<&str> = lines.take_while(|l| l.trim() != "```").collect();
    body.join("\n")
}

/// One command of a block and what its comments say.
#[derive(Debug, Clone)]
pub struct Step {
    /// The command, continued lines joined with their backslash-newline kept.
    pub command: String,
    /// Its trailing comment and the comment-only lines after it, joined with spaces.
    pub comment: String,
}

impl Step {
    /// `NAME=value` when the step sets a shell variable.
    pub fn assignment(&self) -> Option<(&str, &str)> {
        let (name, value) = self.command.split_once('=')?;
        let quoted = value.len() >= 2
            && value.starts_with('\'')
            && value.ends_with('\'')
            && !value[1..value.len() - 1].contains('\'');
        let is_name = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            && (quoted || !value.contains(char::is_whitespace));
        is_name.then_some((name, value))
    }

    /// Whether the step only reads (a `curl` without `-X`): such a step may be repeated
    /// until its answer is what the comment says ("a moment later").
    pub fn reads(&self) -> bool {
        self.command.starts_with("curl ") && !self.command.contains(" -X ")
    }

    /// The `"key": value` pairs the comment quotes.
    pub fn expected(&self) -> Vec<(String, Value)> {
        pairs(&self.comment)
    }

    /// Whether the comment says `every`: each object with a quoted key has the quoted value
    /// (otherwise one object somewhere in each answer does).
    pub fn every(&self) -> bool {
        self.comment.split(|c: char| !c.is_alphanumeric()).any(|w| w == "every")
    }
}

/// Splits a block into its steps.
pub fn steps(block: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut open = String::new();
    let mut in_loop = false;
    for line in block.lines() {
        let (code, comment) = split_comment(line);
        let code = code.trim_end();
        if code.trim().is_empty() {
            // A comment-only line (or a blank one) says more about the step before it.
            if let (Some(last), false) = (steps.last_mut(), comment.is_empty()) {
                push_words(&mut last.comment, comment);
            }
            continue;
        }
        if !open.is_empty() {
            open.push('\n');
        }
        open.push_str(code);
        if open.trim_start().starts_with("for ") {
            in_loop = true;
        }
        let continued = code.ends_with('\\') || (in_loop && code.trim() != "done");
        if continued {
            continue;
        }
        in_loop = false;
        let mut step = Step { command: std::mem::take(&mut open), comment: String::new() };
        push_words(&mut step.comment, comment);
        steps.push(step);
    }
    assert!(open.is_empty(), "the block ends inside a command: {open:?}");
    steps
}

fn push_words(to: &mut String, comment: &str) {
    if comment.is_empty() {
        return;
    }
    if !to.is_empty() {
        to.push(' ');
    }
    to.push_str(comment);
}

/// A line's code and its comment (after a `#` that starts a word outside quotes).
fn split_comment(line: &str) -> (&str, &str) {
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '#') if previous.is_whitespace() => {
                return (&line[..i], line[i + 1..].trim());
            }
            _ => {}
        }
        previous = c;
    }
    (line, "")
}

/// The `"key": value` pairs in `text` (a value is a quoted string, a number or a boolean).
pub fn pairs(text: &str) -> Vec<(String, Value)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('"') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('"') else { break };
        let key = &after[..close];
        let tail = &after[close + 1..];
        let Some(value_text) = tail.strip_prefix(": ") else {
            rest = tail;
            continue;
        };
        let end = if let Some(quoted) = value_text.strip_prefix('"') {
            quoted.find('"').map(|e| e + 2)
        } else {
            Some(
                value_text
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
                    .unwrap_or(value_text.len()),
            )
        };
        match end.and_then(|e| serde_json::from_str(&value_text[..e]).ok().map(|v| (e, v))) {
            Some((e, value)) if !key.is_empty() => {
                found.push((key.to_owned(), value));
                rest = &value_text[e..];
            }
            _ => rest = tail,
        }
    }
    found
}

/// The JSON documents one after the other in `output` (a loop's answers are several).
///
/// # Errors
/// Output that is not JSON, or none at all.
pub fn documents(output: &str) -> Result<Vec<Value>, String> {
    let docs: Result<Vec<Value>, _> =
        serde_json::Deserializer::from_str(output).into_iter::<Value>().collect();
    match docs {
        Ok(docs) if !docs.is_empty() => Ok(docs),
        Ok(_) => Err("no answer".to_owned()),
        Err(e) => Err(format!("not JSON ({e}): {output:?}")),
    }
}

/// Whether `doc` answers as `expected` says: some object has each pair, or with `every`,
/// each object that has the key has the value (and one at least has it).
pub fn satisfies(doc: &Value, expected: &[(String, Value)], every: bool) -> bool {
    expected.iter().all(|(key, value)| {
        let mut seen = Vec::new();
        values_of(doc, key, &mut seen);
        if every {
            !seen.is_empty() && seen.iter().all(|v| *v == value)
        } else {
            seen.contains(&value)
        }
    })
}

fn values_of<'a>(doc: &'a Value, key: &str, into: &mut Vec<&'a Value>) {
    match doc {
        Value::Object(map) => {
            for (k, v) in map {
                if k == key {
                    into.push(v);
                }
                values_of(v, key, into);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| values_of(v, key, into)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn steps_join_continued_lines_and_loops_and_keep_their_comments() {
        let block = "S=http://x\ncurl -s \"$S/a\" \\\n     -d '{\"a\": 1}'   # sent: \"id\": 1\n\
                     # -> more\nfor i in 1 2; do\n  curl -s \"$S/b#$i\"\ndone   # every \"ok\": true\n";
        let steps = super::steps(block);
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[0].assignment(), Some(("S", "http://x")));
        let header = &super::steps("A='x-admin-token: t'")[0];
        assert_eq!(header.assignment(), Some(("A", "'x-admin-token: t'")));
        assert_eq!(steps[1].command, "curl -s \"$S/a\" \\\n     -d '{\"a\": 1}'");
        assert_eq!(steps[1].comment, "sent: \"id\": 1 -> more");
        assert_eq!(steps[1].expected(), [("id".to_owned(), json!(1))]);
        assert!(steps[2].command.starts_with("for ") && steps[2].command.ends_with("done"));
        assert!(steps[2].every() && !steps[2].reads());
    }

    #[test]
    fn pairs_are_quoted_keys_with_json_values() {
        let found = pairs(r#"{"id": 1, "status": "awaiting_payment", ...}; "x" and "ok": true"#);
        assert_eq!(
            found,
            [
                ("id".to_owned(), json!(1)),
                ("status".to_owned(), json!("awaiting_payment")),
                ("ok".to_owned(), json!(true)),
            ]
        );
        let doc = json!({"orders": [{"status": "paid"}, {"status": "paid", "lines": []}]});
        let paid = [("status".to_owned(), json!("paid"))];
        assert!(satisfies(&doc, &paid, true));
        let mixed = json!({"orders": [{"status": "paid"}, {"status": "awaiting_payment"}]});
        assert!(satisfies(&mixed, &paid, false) && !satisfies(&mixed, &paid, true));
    }
}
