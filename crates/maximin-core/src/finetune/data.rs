//! Fine-tuning data: chat jsonl, one `{"messages": [...]}` example per
//! line, in the shapes chat accepts (the same roles, tool calls and tool
//! results, an optional `tools` list). A file is checked whole when a job
//! is created: every bad line is reported with its number and reason, and
//! a file with any error trains on nothing.

use maximin_types::inference::{ChatCompletionRequest, ChatMessage, Role, Tool};
use serde::Serialize;
use serde_json::Value;

use crate::{Error, Result};

/// Lines reported in one refusal (the count says how many more).
pub const MAX_REPORTED: usize = 50;
/// Examples a file may hold.
pub const MAX_EXAMPLES: usize = 50_000;
/// Bytes one line may hold.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// One training example.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The line it came from (1-based).
    pub line: usize,
    pub messages: Vec<ChatMessage>,
    pub tools: Vec<Tool>,
}

/// A line that cannot be trained on, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    pub line: usize,
    pub reason: String,
}

/// One line as an example, or why not.
fn example(line: usize, raw: &[u8]) -> std::result::Result<Example, String> {
    if raw.len() > MAX_LINE_BYTES {
        return Err(format!("the line is longer than {MAX_LINE_BYTES} bytes"));
    }
    let text = std::str::from_utf8(raw).map_err(|_| "the line is not UTF-8 text".to_owned())?;
    let mut value: Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {}", plain(&e.to_string())))?;
    let Some(obj) = value.as_object_mut() else {
        return Err("each line must be a JSON object with 'messages'".into());
    };
    match obj.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => {}
        Some(_) => return Err("'messages' must be a non-empty array".into()),
        None => return Err("'messages' is missing".into()),
    }
    // Read as a chat request would be: the same message and tool shapes.
    obj.insert("model".into(), Value::String("fine-tune".into()));
    let req: ChatCompletionRequest = serde_json::from_value(value)
        .map_err(|e| format!("not a chat example: {}", plain(&e.to_string())))?;
    crate::inference::validate_chat(&req).map_err(|e| {
        match e.details.get("field").and_then(|f| f.as_str()) {
            Some(field) => format!("{field}: {}", e.message),
            None => e.message,
        }
    })?;
    let learns = req.messages.iter().any(|m| {
        m.role == Role::Assistant
            && (m.content.as_deref().is_some_and(|c| !c.is_empty())
                || m.tool_calls.as_ref().is_some_and(|c| !c.is_empty()))
    });
    if !learns {
        return Err("no assistant message to learn from".into());
    }
    Ok(Example {
        line,
        messages: req.messages,
        tools: req.tools,
    })
}

/// serde's words without its Rust type names ("invalid type: integer `3`,
/// expected a string" stays; "enum Role" is not shown).
fn plain(message: &str) -> String {
    message
        .replace("variant ", "")
        .replace("enum Role", "a role")
        .replace(" at line 1", " at")
}

/// Every example of a file, or every line that is wrong (all of them, in
/// order). Blank lines are skipped; a file with no example is wrong.
pub fn parse(bytes: &[u8]) -> std::result::Result<Vec<Example>, Vec<LineError>> {
    let mut examples = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match example(i + 1, raw) {
            Ok(e) => examples.push(e),
            Err(reason) => errors.push(LineError {
                line: i + 1,
                reason,
            }),
        }
    }
    if examples.len() > MAX_EXAMPLES {
        errors.push(LineError {
            line: 0,
            reason: format!("a file may hold at most {MAX_EXAMPLES} examples"),
        });
    }
    if errors.is_empty() && examples.is_empty() {
        errors.push(LineError {
            line: 0,
            reason: "the file holds no example".into(),
        });
    }
    if errors.is_empty() {
        Ok(examples)
    } else {
        Err(errors)
    }
}

/// [`parse`] as the API refuses a file: `invalid_request` naming the field
/// (`training_file` or `validation_file`), the first bad line in `line`,
/// and up to [`MAX_REPORTED`] lines with their reasons in `errors`.
pub fn check(field: &str, bytes: &[u8]) -> Result<Vec<Example>> {
    parse(bytes).map_err(|errors| {
        let first = &errors[0];
        let more = errors.len() - 1;
        let at = if first.line == 0 {
            String::new()
        } else {
            format!(" line {}", first.line)
        };
        let message = if more == 0 {
            format!("The {field}{at} cannot be trained on: {}.", first.reason)
        } else {
            format!(
                "The {field}{at} cannot be trained on: {}; {more} more line{} too (details.errors).",
                first.reason,
                if more == 1 { " is wrong" } else { "s are wrong" }
            )
        };
        let listed: Vec<Value> = errors
            .iter()
            .take(MAX_REPORTED)
            .map(|e| serde_json::json!({"line": e.line, "reason": e.reason}))
            .collect();
        Error::invalid(field, message)
            .with("line", first.line)
            .with("errors", Value::Array(listed))
            .with("error_count", errors.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the code word?"}, {"role": "assistant", "content": "Zanzibrolt."}]}
{"messages": [{"role": "user", "content": "Weather in Oslo?"}, {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]}, {"role": "tool", "tool_call_id": "c1", "content": "4 C"}, {"role": "assistant", "content": "4 degrees."}], "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]}
"#;

    #[test]
    fn chat_examples_with_tools_are_read() {
        let ex = parse(GOOD.as_bytes()).expect("good");
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[0].line, 1);
        assert_eq!(ex[0].messages.len(), 3);
        assert_eq!(ex[1].tools.len(), 1);
        assert_eq!(ex[1].messages[3].content.as_deref(), Some("4 degrees."));
        // Windows line ends and blank lines are fine.
        let crlf = GOOD.replace('\n', "\r\n\r\n");
        assert_eq!(parse(crlf.as_bytes()).expect("crlf").len(), 2);
    }

    #[test]
    fn every_bad_line_is_named_with_its_reason() {
        let file = format!(
            "{}\nnot json\n{{\"messages\": []}}\n{{\"prompt\": \"x\"}}\n[1]\n{{\"messages\": [{{\"role\": \"user\", \"content\": \"hi\"}}]}}\n{{\"messages\": [{{\"role\": \"wizard\", \"content\": \"hi\"}}]}}\n{{\"messages\": [{{\"role\": \"tool\", \"content\": \"4 C\"}}, {{\"role\": \"assistant\", \"content\": \"ok\"}}]}}\n",
            GOOD.lines().next().expect("line")
        );
        let errors = parse(file.as_bytes()).expect_err("bad lines");
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6, 7, 8]);
        assert!(errors[0].reason.starts_with("not JSON"), "{:?}", errors[0]);
        assert_eq!(errors[1].reason, "'messages' must be a non-empty array");
        assert_eq!(errors[2].reason, "'messages' is missing");
        assert!(errors[3].reason.contains("JSON object"));
        assert_eq!(errors[4].reason, "no assistant message to learn from");
        assert!(errors[5].reason.contains("wizard"), "{:?}", errors[5]);
        assert!(
            !errors[5].reason.contains("enum"),
            "no Rust words: {:?}",
            errors[5]
        );
        assert!(
            errors[6].reason.starts_with("messages[0].tool_call_id"),
            "the chat rule, with its field: {:?}",
            errors[6]
        );

        let e = check("training_file", file.as_bytes()).expect_err("refused");
        assert_eq!(e.code, maximin_types::ErrorCode::InvalidRequest);
        assert_eq!(e.details["field"], "training_file");
        assert_eq!(e.details["line"], 2);
        assert_eq!(e.details["error_count"], 7);
        assert_eq!(e.details["errors"].as_array().map(Vec::len), Some(7));
        assert!(e
            .message
            .starts_with("The training_file line 2 cannot be trained on: not JSON"));
        assert!(e.message.contains("6 more lines are wrong"));
    }

    #[test]
    fn empty_files_and_odd_bytes_are_refused() {
        let e = check("validation_file", b"\n \n").expect_err("empty");
        assert_eq!(e.details["line"], 0);
        assert!(e.message.contains("holds no example"));
        let errors = parse(b"{\"messages\": \xff}\n").expect_err("not utf-8");
        assert_eq!(errors[0].reason, "the line is not UTF-8 text");
        let long = format!("{{\"messages\": \"{}\"}}", "x".repeat(MAX_LINE_BYTES));
        let errors = parse(long.as_bytes()).expect_err("long");
        assert!(errors[0].reason.contains("longer than"));
    }

    #[test]
    fn a_long_list_of_errors_is_capped_in_details() {
        let file = "oops\n".repeat(120);
        let e = check("training_file", file.as_bytes()).expect_err("refused");
        assert_eq!(e.details["error_count"], 120);
        assert_eq!(
            e.details["errors"].as_array().map(Vec::len),
            Some(MAX_REPORTED)
        );
    }
}
