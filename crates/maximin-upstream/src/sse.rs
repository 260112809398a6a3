//! A server-sent events reader: bytes as they arrive → events (`event`
//! name and joined `data` lines), whatever the chunking.

#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

impl SseParser {
    /// Feeds bytes; returns the events they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.is_empty() {
                if !self.data.is_empty() || self.event.is_some() {
                    out.push(SseEvent {
                        event: self.event.take(),
                        data: std::mem::take(&mut self.data).join("\n"),
                    });
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_str(), ""),
            };
            match field {
                "data" => self.data.push(value.to_owned()),
                "event" => self.event = Some(value.to_owned()),
                _ => {}
            }
        }
        out
    }

    /// An event left without its blank line when the stream ended.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            let mut events = self.push(&rest);
            events.extend(self.push(b"\n\n"));
            return events.pop();
        }
        if self.data.is_empty() {
            return None;
        }
        Some(SseEvent {
            event: self.event.take(),
            data: std::mem::take(&mut self.data).join("\n"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_any_chunking() {
        let wire = b"event: a\ndata: {\"x\":1}\n\n: comment\ndata: line1\ndata: line2\r\n\r\ndata: [DONE]\n\n";
        for cut in 1..wire.len() {
            let mut p = SseParser::default();
            let mut got = p.push(&wire[..cut]);
            got.extend(p.push(&wire[cut..]));
            assert_eq!(got.len(), 3, "cut at {cut}");
            assert_eq!(got[0].event.as_deref(), Some("a"));
            assert_eq!(got[0].data, "{\"x\":1}");
            assert_eq!(got[1].data, "line1\nline2");
            assert_eq!(got[2].data, "[DONE]");
        }
    }
}
