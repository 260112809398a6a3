//! Stop strings over a stream of decoded text: text is released only once no
//! stop string (or tool-call trigger) could still begin inside it, so a stop is
//! never half-sent.

/// Why the matcher stopped the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hit {
    /// A stop string: generation ends; the stop itself is not part of the output.
    Stop,
    /// A marker (the tool-call trigger): the text from it on is kept aside.
    Marker,
}

#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    marker: Option<String>,
    pending: String,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>, marker: Option<String>) -> Self {
        StopMatcher {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            marker,
            pending: String::new(),
        }
    }

    /// Adds decoded text; returns the text safe to release and, if a stop or the
    /// marker appeared, which (the released text ends just before it; for a
    /// marker, `rest()` holds the marker and what followed).
    pub fn push(&mut self, text: &str) -> (String, Option<Hit>) {
        self.pending.push_str(text);
        let mut first: Option<(usize, Hit)> = None;
        for s in &self.stops {
            if let Some(i) = self.pending.find(s.as_str()) {
                if first.as_ref().is_none_or(|(j, _)| i < *j) {
                    first = Some((i, Hit::Stop));
                }
            }
        }
        if let Some(m) = &self.marker {
            if let Some(i) = self.pending.find(m.as_str()) {
                if first.as_ref().is_none_or(|(j, _)| i < *j) {
                    first = Some((i, Hit::Marker));
                }
            }
        }
        if let Some((i, hit)) = first {
            let out = self.pending[..i].to_owned();
            self.pending = match hit {
                Hit::Stop => String::new(),
                Hit::Marker => self.pending[i..].to_owned(),
            };
            return (out, Some(hit));
        }
        // Hold back the longest suffix that is a prefix of a stop or the marker.
        let mut keep = 0;
        for s in self.stops.iter().chain(self.marker.iter()) {
            for (k, _) in s.char_indices().skip(1) {
                if k > keep && self.pending.ends_with(&s[..k]) {
                    keep = k;
                }
            }
        }
        let cut = self.pending.len() - keep;
        let out = self.pending[..cut].to_owned();
        self.pending.drain(..cut);
        (out, None)
    }

    /// What is held back (at the end of generation it is released as is).
    pub fn rest(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_are_never_half_sent() {
        let mut m = StopMatcher::new(vec!["END".into()], None);
        assert_eq!(m.push("hello E"), ("hello ".into(), None));
        assert_eq!(m.push("N"), (String::new(), None));
        assert_eq!(m.push("Dx"), (String::new(), Some(Hit::Stop)));
        let mut m = StopMatcher::new(vec!["END".into()], None);
        assert_eq!(m.push("EN"), (String::new(), None));
        assert_eq!(m.push("o"), ("ENo".into(), None));
        assert_eq!(m.rest(), "");
    }

    #[test]
    fn the_earliest_hit_wins_and_markers_keep_their_text() {
        let mut m = StopMatcher::new(vec!["\n\n".into()], Some("<tool_call>".into()));
        let (out, hit) = m.push("ok <tool_call>{\"a\":1}\n\n");
        assert_eq!(out, "ok ");
        assert_eq!(hit, Some(Hit::Marker));
        assert_eq!(m.rest(), "<tool_call>{\"a\":1}\n\n");
    }

    #[test]
    fn multibyte_text_is_cut_on_char_boundaries() {
        let mut m = StopMatcher::new(vec!["éé".into()], None);
        assert_eq!(m.push("añé"), ("añ".into(), None));
        assert_eq!(m.push("x"), ("éx".into(), None));
    }
}
