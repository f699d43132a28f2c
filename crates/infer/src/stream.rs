//! Streaming text out as tokens arrive. GPT-2's byte-level BPE (Radford et al. 2019) can
//! split one UTF-8 character over several tokens, so bytes are held back until they form
//! whole characters (what HF's `TextStreamer` does by re-decoding; here on raw bytes).
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Add bytes; return the text that is complete so far. Invalid bytes become U+FFFD at
    /// once; an unfinished character at the end waits for the next push.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // The bytes before `valid_up_to` are valid UTF-8 by definition.
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match e.error_len() {
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                    }
                }
            }
        }
    }

    /// Whatever is left at the end (a replacement character for a cut-off sequence).
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use data::Tokenizer;

    #[test]
    fn holds_a_split_character_until_it_completes() {
        let mut s = Utf8Stream::default();
        let bytes = "é😀".as_bytes(); // 2 + 4 bytes
        assert_eq!(s.push(&bytes[..1]), "");
        assert_eq!(s.push(&bytes[1..3]), "é");
        assert_eq!(s.push(&bytes[3..5]), "");
        assert_eq!(s.push(&bytes[5..]), "😀");
        assert_eq!(s.push(&[0xF0, 0x9F]), "");
        assert_eq!(s.finish(), "\u{FFFD}");
        // An invalid byte is replaced at once, not held.
        assert_eq!(s.push(&[b'a', 0xFF, b'b']), "a\u{FFFD}b");
        // …even when an unfinished character follows it.
        assert_eq!(s.push(&[0xFF, 0xC3]), "\u{FFFD}");
        assert_eq!(s.push(&[0xA9]), "é");
    }

    #[test]
    fn gpt2_tokens_streamed_one_by_one_rebuild_the_text() {
        let tok = data::Gpt2Tokenizer;
        let text = "naïve café — 你好 🦀!";
        let mut s = Utf8Stream::default();
        let mut out = String::new();
        let ids = tok.encode(text).unwrap();
        for id in &ids {
            let piece = s.push(&tok.decode_bytes(&[*id]));
            assert!(!piece.contains('\u{FFFD}'), "{piece:?}");
            out += &piece;
        }
        out += &s.finish();
        assert_eq!(out, text);
        // The test means something only if some token splits a character.
        assert!(ids
            .iter()
            .any(|&i| std::str::from_utf8(&tok.decode_bytes(&[i])).is_err()));
    }
}
