//! From a chat request to a prompt: the model's own chat template (the Jinja
//! template in the GGUF, rendered with minijinja), or llama.cpp's built-in
//! template for the architecture when the GGUF has none; and tool calling that
//! does not depend on the model: the tools are described in the system turn and
//! calls are `<tool_call>{"name":…,"arguments":…}</tool_call>`, constrained by a
//! grammar made from the tools' JSON schemas.

use maximin_core::Error;
use maximin_types::inference::{ChatCompletionRequest, ChatMessage, Role, Tool};
use serde_json::{json, Value};

pub const CALL_OPEN: &str = "<tool_call>";
pub const CALL_CLOSE: &str = "</tool_call>";

/// How the tools of a request may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolMode {
    /// No tools, or `tool_choice: "none"`.
    None,
    /// The model may answer or call a tool (`"auto"`, the default with tools).
    Auto,
    /// The model must call a tool: any (`"required"`) or the named one.
    Forced(Option<String>),
    /// No tools; the reply is JSON of the request's `response_format`
    /// schema, constrained by a grammar from its first token.
    Json,
}

pub fn tool_mode(req: &ChatCompletionRequest) -> Result<ToolMode, Error> {
    let plain = if req.json_schema().is_some() {
        ToolMode::Json
    } else {
        ToolMode::None
    };
    if req.tools.is_empty() {
        return match &req.tool_choice {
            None => Ok(plain),
            Some(Value::String(s)) if s == "none" || s == "auto" => Ok(plain),
            Some(_) => Err(Error::invalid(
                "tool_choice",
                "'tool_choice' needs 'tools'.",
            )),
        };
    }
    match &req.tool_choice {
        None => Ok(ToolMode::Auto),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Ok(ToolMode::Auto),
            "none" => Ok(plain),
            "required" => Ok(ToolMode::Forced(None)),
            _ => Err(Error::invalid(
                "tool_choice",
                "'tool_choice' is \"auto\", \"none\", \"required\" or {\"type\":\"function\",\"function\":{\"name\":…}}.",
            )),
        },
        Some(v) => {
            let name = v["function"]["name"].as_str().ok_or_else(|| {
                Error::invalid("tool_choice", "'tool_choice.function.name' is missing.")
            })?;
            if !req.tools.iter().any(|t| t.function.name == name) {
                return Err(Error::invalid(
                    "tool_choice",
                    format!("'tool_choice' names '{name}', which is not in 'tools'."),
                ));
            }
            Ok(ToolMode::Forced(Some(name.to_owned())))
        }
    }
}

/// The JSON schema of one call: `{"name": <const>, "arguments": <parameters>}`,
/// for each allowed tool.
pub fn call_schema(tools: &[Tool], only: Option<&str>) -> Value {
    let options: Vec<Value> = tools
        .iter()
        .filter(|t| only.is_none_or(|n| n == t.function.name))
        .map(|t| {
            let params = t
                .function
                .parameters
                .clone()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            json!({
                "type": "object",
                "properties": {"name": {"const": t.function.name}, "arguments": params},
                "required": ["name", "arguments"],
                "additionalProperties": false,
            })
        })
        .collect();
    if options.len() == 1 {
        options.into_iter().next().unwrap_or(Value::Null)
    } else {
        json!({"oneOf": options})
    }
}

/// The system text that tells the model about its tools.
pub fn tool_instructions(tools: &[Tool], mode: &ToolMode) -> String {
    let list: Vec<Value> = tools
        .iter()
        .map(|t| json!({"name": t.function.name, "description": t.function.description, "parameters": t.function.parameters}))
        .collect();
    let must = match mode {
        ToolMode::Forced(Some(n)) => format!("You must call the function '{n}' now."),
        ToolMode::Forced(None) => "You must call one of these functions now.".to_owned(),
        _ => "Call a function only when it helps to answer.".to_owned(),
    };
    format!(
        "You can call these functions:\n{}\nTo call a function, reply with {CALL_OPEN}{{\"name\": <function name>, \"arguments\": <arguments as JSON>}}{CALL_CLOSE}. {must}",
        serde_json::to_string(&list).unwrap_or_default()
    )
}

/// Parses a call as the grammar produced it. A call cut short by
/// `max_tokens` does not parse; the caller returns it as text, which is no
/// server error (so this is a plain reason, not a logged [`Error`]).
pub fn parse_call(text: &str) -> Result<(String, String), String> {
    let body = text
        .trim()
        .trim_start_matches(CALL_OPEN)
        .trim_end_matches(CALL_CLOSE)
        .trim();
    let v: Value = serde_json::from_str(body).map_err(|e| format!("tool call is not JSON: {e}"))?;
    let name = v["name"]
        .as_str()
        .ok_or_else(|| "tool call has no name".to_owned())?
        .to_owned();
    Ok((name, v["arguments"].to_string()))
}

/// Messages as the prompt sees them: tools described in the system turn.
pub fn prepared_messages(req: &ChatCompletionRequest, mode: &ToolMode) -> Vec<ChatMessage> {
    let mut messages = req.messages.clone();
    if *mode != ToolMode::None {
        let text = match mode {
            ToolMode::Json => match req
                .response_format
                .as_ref()
                .and_then(|f| f["json_schema"].get("schema"))
            {
                Some(schema) => {
                    format!("Reply with one JSON object only, following this JSON schema: {schema}")
                }
                None => "Reply with one short JSON object only.".to_owned(),
            },
            _ => tool_instructions(&req.tools, mode),
        };
        match messages.iter_mut().find(|m| m.role == Role::System) {
            Some(sys) => {
                let old = sys.content.take().unwrap_or_default();
                sys.content = Some(format!("{old}\n\n{text}"));
            }
            None => messages.insert(
                0,
                ChatMessage {
                    role: Role::System,
                    content: Some(text),
                    name: None,
                    tool_calls: None,
                    tool_call_id: None,
                },
            ),
        }
    }
    messages
}

fn role(r: Role) -> &'static str {
    match r {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

/// Assistant tool calls and tool results written as plain text, for templates
/// that know only system/user/assistant.
pub fn plain_messages(messages: &[ChatMessage]) -> Vec<(String, String)> {
    messages
        .iter()
        .map(|m| {
            let mut content = m.content.clone().unwrap_or_default();
            if let Some(calls) = &m.tool_calls {
                for c in calls {
                    content.push_str(&format!(
                        "{CALL_OPEN}{{\"name\": {}, \"arguments\": {}}}{CALL_CLOSE}",
                        Value::String(c.function.name.clone()),
                        c.function.arguments
                    ));
                }
            }
            match m.role {
                Role::Tool => (
                    "user".to_owned(),
                    format!(
                        "Result of tool call {}: {content}",
                        m.tool_call_id.as_deref().unwrap_or("")
                    ),
                ),
                r => (role(r).to_owned(), content),
            }
        })
        .collect()
}

/// Renders a Jinja chat template (Hugging Face conventions).
pub fn render_jinja(
    template: &str,
    messages: &[ChatMessage],
    bos: &str,
    eos: &str,
    add_generation_prompt: bool,
) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    minijinja_contrib::add_to_environment(&mut env);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |msg: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                msg,
            ))
        },
    );
    env.add_template("chat", template)
        .map_err(|e| e.to_string())?;
    let msgs: Vec<Value> = messages
        .iter()
        .map(|m| {
            let mut v = json!({"role": role(m.role), "content": m.content.clone().unwrap_or_default()});
            if let Some(calls) = &m.tool_calls {
                v["tool_calls"] = json!(calls
                    .iter()
                    .map(|c| json!({"id": c.id, "type": "function", "function": {
                        "name": c.function.name,
                        "arguments": serde_json::from_str::<Value>(&c.function.arguments).unwrap_or(Value::Null)}}))
                    .collect::<Vec<_>>());
            }
            if let Some(id) = &m.tool_call_id {
                v["tool_call_id"] = json!(id);
            }
            v
        })
        .collect();
    let tmpl = env.get_template("chat").map_err(|e| e.to_string())?;
    tmpl.render(minijinja::context! {
        messages => msgs,
        add_generation_prompt,
        bos_token => bos,
        eos_token => eos,
    })
    .map_err(|e| e.to_string())
}

/// llama.cpp's built-in template name for an architecture without a template.
pub fn builtin_for(architecture: &str) -> &'static str {
    match architecture {
        a if a.starts_with("gemma") => "gemma",
        a if a.starts_with("llama") => "llama3",
        a if a.starts_with("mistral") => "mistral-v7",
        a if a.starts_with("phi3") => "phi3",
        _ => "chatml",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maximin_types::inference::{FunctionDef, Tool};

    fn req(tool_choice: Option<Value>) -> ChatCompletionRequest {
        serde_json::from_value(json!({
            "model": "m",
            "messages": [{"role": "user", "content": "weather in Paris?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
            "tool_choice": tool_choice,
        }))
        .expect("request")
    }

    #[test]
    fn tool_choice_is_read_and_checked() {
        assert_eq!(tool_mode(&req(None)).expect("auto"), ToolMode::Auto);
        assert_eq!(
            tool_mode(&req(Some(json!("required")))).expect("req"),
            ToolMode::Forced(None)
        );
        assert_eq!(
            tool_mode(&req(Some(
                json!({"type": "function", "function": {"name": "get_weather"}})
            )))
            .expect("named"),
            ToolMode::Forced(Some("get_weather".into()))
        );
        let e = tool_mode(&req(Some(
            json!({"type": "function", "function": {"name": "nope"}}),
        )))
        .expect_err("unknown");
        assert_eq!(e.details["field"], "tool_choice");
    }

    #[test]
    fn schemas_and_calls() {
        let tools = vec![Tool {
            kind: "function".into(),
            function: FunctionDef {
                name: "f".into(),
                description: None,
                parameters: None,
            },
        }];
        let s = call_schema(&tools, None);
        assert_eq!(s["properties"]["name"]["const"], "f");
        let (name, args) =
            parse_call("<tool_call>{\"name\": \"f\", \"arguments\": {\"x\": 1}}</tool_call>")
                .expect("parse");
        assert_eq!((name.as_str(), args.as_str()), ("f", "{\"x\":1}"));
    }

    #[test]
    fn jinja_templates_render_with_the_hf_conventions() {
        let t = "{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>{{ m.content | trim }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";
        let msgs = prepared_messages(&req(None), &ToolMode::Auto);
        let out = render_jinja(t, &msgs, "<s>", "</s>", true).expect("render");
        assert!(out.starts_with("<s><|system|>You can call these functions"));
        assert!(out.ends_with("<|user|>weather in Paris?\n<|assistant|>"));
        assert!(render_jinja("{{ raise_exception('no') }}", &msgs, "", "", true).is_err());
    }
}
