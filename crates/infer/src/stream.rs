//! Streaming text out as tokens arrive: BPE tokens can split a UTF-8 character, so bytes
//! are held back until they form whole characters.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Add bytes; return the text that is complete so far.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        match std::str::from_utf8(&self.pending) {
            Ok(s) => {
                let out = s.to_string();
                self.pending.clear();
                out
            }
            Err(e) => {
                let valid = e.valid_up_to();
                // An invalid sequence (not just an unfinished one) is replaced, not held forever.
                let keep = if e.error_len().is_some() {
                    self.pending.len()
                } else {
                    valid
                };
                let out = String::from_utf8_lossy(&self.pending[..keep]).into_owned();
                self.pending.drain(..keep);
                out
            }
        }
    }

    /// Whatever is left at the end (replacement characters for a cut-off sequence).
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}
