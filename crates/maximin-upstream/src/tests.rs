use maximin_types::inference::ChatCompletionRequest;
use serde_json::json;

use crate::anthropic::{messages_body, parse_message};
use crate::openai::{chat_body, parse_completion, StreamState, Wire};

fn request(v: serde_json::Value) -> ChatCompletionRequest {
    serde_json::from_value(v).expect("request")
}

fn conversation() -> ChatCompletionRequest {
    request(json!({
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "user", "content": "Thanks"}
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
        "tool_choice": "required",
        "stop": ["END"],
        "max_tokens": 50,
        "stream": true
    }))
}

#[test]
fn openai_bodies_carry_the_provider_model_and_ask_for_stream_usage() {
    let body = chat_body("llama-3-8b", &conversation(), Wire::OpenAi);
    assert_eq!(body["model"], "llama-3-8b");
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(body["tool_choice"], "required");
    assert_eq!(body["messages"][3]["tool_call_id"], "call_1");
    assert!(
        body.get("temperature").is_none(),
        "unset fields are left out"
    );
    let native = chat_body("MiniMax-M2", &conversation(), Wire::MiniMax);
    assert_eq!(
        native["tool_choice"], "auto",
        "MiniMax takes only none and auto"
    );
}

#[test]
fn anthropic_bodies_translate_system_tools_and_results() {
    let body = messages_body("claude-x", &conversation(), 8192);
    assert_eq!(body["system"], "Be brief.");
    assert_eq!(body["max_tokens"], 50);
    assert_eq!(body["stop_sequences"], json!(["END"]));
    assert_eq!(body["tool_choice"], json!({"type": "any"}));
    assert_eq!(body["tools"][0]["input_schema"], json!({"type": "object"}));
    let turns = body["messages"].as_array().expect("turns");
    let roles: Vec<&str> = turns
        .iter()
        .map(|t| t["role"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"], "turns alternate");
    assert_eq!(turns[1]["content"][0]["type"], "tool_use");
    assert_eq!(turns[1]["content"][0]["input"], json!({"city": "Paris"}));
    assert_eq!(turns[2]["content"][0]["type"], "tool_result");
    assert_eq!(turns[2]["content"][0]["tool_use_id"], "call_1");
    assert_eq!(turns[2]["content"][1]["text"], "Thanks");
}

#[test]
fn json_mode_becomes_an_instruction_for_anthropic() {
    let req = request(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_object"}}),
    );
    let body = messages_body("c", &req, 100);
    assert!(body["system"].as_str().unwrap_or("").contains("JSON"));
    assert_eq!(body["max_tokens"], 100, "capped by the context window");
}

#[test]
fn answers_translate_back() {
    let out = parse_completion(&json!({
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "",
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3}
    }))
    .expect("ok");
    assert_eq!(out.finish_reason, "tool_calls");
    assert_eq!(out.message.content, None);
    assert_eq!(out.usage.prompt_tokens, 7);

    let out = parse_message(&json!({
        "content": [{"type": "text", "text": "Hi"}, {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 5, "output_tokens": 2}
    }))
    .expect("ok");
    assert_eq!(out.finish_reason, "tool_calls");
    assert_eq!(out.message.content.as_deref(), Some("Hi"));
    let calls = out.message.tool_calls.expect("calls");
    assert_eq!(calls[0].function.arguments, "{\"a\":1}");
}

#[test]
fn streamed_tool_calls_are_assembled_from_pieces() {
    let mut st = StreamState::default();
    for chunk in [
        json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "He"}}]}),
        json!({"choices": [{"index": 0, "delta": {"content": "llo"}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{\"a\""}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        json!({"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 9}}),
    ] {
        st.chunk(&chunk);
    }
    let out = st.output();
    assert_eq!(out.message.content.as_deref(), Some("Hello"));
    assert_eq!(out.finish_reason, "tool_calls");
    assert_eq!(out.usage.completion_tokens, 9);
    let calls = out.message.tool_calls.expect("calls");
    assert_eq!(calls[0].id, "c1");
    assert_eq!(calls[0].function.arguments, "{\"a\":1}");
}
