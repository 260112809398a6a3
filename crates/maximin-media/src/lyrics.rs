//! Lyrics (spec §9.2): the catalog's default chat model writes a song's
//! sections, constrained by a JSON schema (section tags from the spec's
//! list, a few lines each), assembled here into tagged lyrics with a title
//! and style tags.

use maximin_core::{Caller, Error, Platform, Result};
use maximin_types::inference::{ChatCompletionRequest, ChatMessage, Role};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::fields;

/// The chat model that writes lyrics.
pub const LYRICS_MODEL: &str = "minimax-chat-v2";

/// The structure tags lyrics use (spec §9.2).
pub const TAGS: [&str; 14] = [
    "Intro",
    "Verse",
    "Pre-Chorus",
    "Chorus",
    "Hook",
    "Drop",
    "Bridge",
    "Solo",
    "Build-up",
    "Instrumental",
    "Breakdown",
    "Break",
    "Interlude",
    "Outro",
];

/// A checked lyrics request.
pub struct LyricsRequest {
    pub edit: bool,
    pub prompt: String,
    pub lyrics: Option<String>,
    pub title: Option<String>,
}

/// Checks a `/v1/lyrics_generation` body.
pub fn parse(body: &Value) -> Result<LyricsRequest> {
    let edit = match fields::required_str(body, "mode")? {
        "write_full_song" => false,
        "edit" => true,
        _ => {
            return Err(Error::invalid(
                "mode",
                "'mode' must be 'write_full_song' or 'edit'.",
            ))
        }
    };
    let prompt = fields::opt_str(body, "prompt")?.unwrap_or("").to_owned();
    if prompt.chars().count() > 2000 {
        return Err(Error::invalid(
            "prompt",
            "'prompt' must be at most 2000 characters.",
        ));
    }
    let lyrics = fields::opt_str(body, "lyrics")?
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned);
    if lyrics.as_ref().is_some_and(|l| l.chars().count() > 3500) {
        return Err(Error::invalid(
            "lyrics",
            "'lyrics' must be at most 3500 characters.",
        ));
    }
    if edit && lyrics.is_none() {
        return Err(Error::invalid(
            "lyrics",
            "'lyrics' is required in 'edit' mode.",
        ));
    }
    let title = fields::opt_str(body, "title")?
        .filter(|t| !t.trim().is_empty())
        .map(str::to_owned);
    Ok(LyricsRequest {
        edit,
        prompt,
        lyrics,
        title,
    })
}

/// A song's words.
pub struct Song {
    pub title: String,
    pub style_tags: String,
    pub lyrics: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

#[derive(Deserialize)]
struct Written {
    title: String,
    sections: Vec<Section>,
}

#[derive(Deserialize)]
struct Section {
    tag: String,
    lines: Vec<String>,
}

/// Genre and mood words found in the prompt, as style tags.
pub fn style_tags(prompt: &str) -> String {
    const WORDS: [(&str, &str); 20] = [
        ("pop", "Pop"),
        ("rock", "Rock"),
        ("jazz", "Jazz"),
        ("blues", "Blues"),
        ("folk", "Folk"),
        ("electronic", "Electronic"),
        ("edm", "EDM"),
        ("hip hop", "Hip Hop"),
        ("rap", "Rap"),
        ("classical", "Classical"),
        ("country", "Country"),
        ("ballad", "Ballad"),
        ("happy", "Upbeat"),
        ("upbeat", "Upbeat"),
        ("sad", "Melancholic"),
        ("calm", "Calm"),
        ("energetic", "Energetic"),
        ("romantic", "Romantic"),
        ("female", "Female Vocals"),
        ("male", "Male Vocals"),
    ];
    let p = prompt.to_lowercase();
    let mut tags: Vec<&str> = Vec::new();
    for (word, tag) in WORDS {
        let found = p
            .split(|c: char| !c.is_alphanumeric() && c != ' ')
            .any(|chunk| {
                chunk == word
                    || chunk
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .windows(word.split_whitespace().count())
                        .any(|w| w.join(" ") == word)
            });
        if found && !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if tags.is_empty() {
        tags.push("Pop");
    }
    tags.join(", ")
}

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 60},
            "sections": {
                "type": "array",
                "minItems": 3,
                "maxItems": 6,
                "items": {
                    "type": "object",
                    "properties": {
                        "tag": {"type": "string", "enum": ["Intro", "Verse", "Pre-Chorus", "Chorus", "Bridge", "Outro"]},
                        "lines": {
                            "type": "array",
                            "minItems": 2,
                            "maxItems": 4,
                            "items": {"type": "string", "minLength": 3, "maxLength": 60}
                        }
                    },
                    "required": ["tag", "lines"]
                }
            }
        },
        "required": ["title", "sections"]
    })
}

/// Writes (or edits) a song with the local chat model.
pub async fn write(p: &Platform, caller: &Caller, req: &LyricsRequest) -> Result<Song> {
    let theme = if req.prompt.trim().is_empty() {
        "a song about an ordinary day".to_owned()
    } else {
        req.prompt.clone()
    };
    let ask = match (&req.lyrics, req.edit) {
        (Some(l), true) => format!(
            "Rewrite these song lyrics as asked ({theme}). Keep the sections.\n\n{l}"
        ),
        _ => format!(
            "Write the lyrics of a song: {theme}. Give it a title and sections (Verse, Chorus, Verse, Chorus, Bridge, Chorus), a few short lines each."
        ),
    };
    let chat = ChatCompletionRequest {
        model: LYRICS_MODEL.into(),
        messages: vec![ChatMessage {
            role: Role::User,
            content: Some(ask),
            name: None,
            tool_calls: None,
            tool_call_id: None,
        }],
        stream: false,
        temperature: Some(0.8),
        top_p: None,
        max_tokens: Some(400),
        stop: None,
        seed: None,
        tools: Vec::new(),
        tool_choice: None,
        response_format: Some(json!({
            "type": "json_schema",
            "json_schema": {"name": "song", "schema": schema()}
        })),
    };
    let mut run = p.start_chat(caller, &chat).await?;
    let out = run.finish().await?;
    let text = out.message.content.unwrap_or_default();
    let written: Written = serde_json::from_str(&text).map_err(|_| {
        Error::new(
            maximin_types::ErrorCode::ServerError,
            "The chat model's lyrics could not be read; try again.",
        )
    })?;
    let mut lyrics = String::new();
    for s in &written.sections {
        let lines: Vec<&str> = s
            .lines
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect();
        if lines.is_empty() {
            continue;
        }
        if !lyrics.is_empty() {
            lyrics.push('\n');
        }
        lyrics.push_str(&format!("[{}]\n", s.tag));
        for l in lines {
            lyrics.push_str(l);
            lyrics.push('\n');
        }
    }
    Ok(Song {
        title: req
            .title
            .clone()
            .unwrap_or_else(|| written.title.trim().to_owned()),
        style_tags: style_tags(&req.prompt),
        lyrics,
        prompt_tokens: out.usage.prompt_tokens,
        completion_tokens: out.usage.completion_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn style_tags_come_from_the_prompt() {
        assert_eq!(
            style_tags("A sad jazz ballad, female singer"),
            "Jazz, Ballad, Melancholic, Female Vocals"
        );
        assert_eq!(style_tags("upbeat hip hop"), "Hip Hop, Upbeat");
        assert_eq!(style_tags(""), "Pop");
        assert!(parse(&json!({"mode": "edit"})).is_err());
        assert!(parse(&json!({"mode": "write_full_song"})).is_ok());
        assert_eq!(
            parse(&json!({"mode": "compose"}))
                .err()
                .map(|e| e.details["field"].clone()),
            Some(json!("mode"))
        );
    }
}
