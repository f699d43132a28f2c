//! Fill the generated sections of `docs/*.md` (between `<!-- BEGIN GENERATED: name -->` and
//! `<!-- END GENERATED -->`) with text computed from results, so every number in the docs
//! comes from a run of the code.
use anyhow::{bail, Context, Result};
use std::path::Path;

pub fn replace_generated(doc: &Path, name: &str, content: &str) -> Result<()> {
    let text =
        std::fs::read_to_string(doc).with_context(|| format!("reading {}", doc.display()))?;
    let begin = format!("<!-- BEGIN GENERATED: {name} -->");
    let end = "<!-- END GENERATED -->";
    let b = text.find(&begin);
    let e = b.and_then(|b| text[b..].find(end).map(|e| b + e));
    let (Some(b), Some(e)) = (b, e) else {
        bail!("{}: no '{begin}' … '{end}' section", doc.display());
    };
    anyhow::ensure!(b < e, "{}: markers out of order", doc.display());
    let new = format!(
        "{}{begin}\n{}\n{}",
        &text[..b],
        content.trim_end(),
        &text[e..]
    );
    runtime::fsio::write_atomic(doc, |tmp| Ok(std::fs::write(tmp, new)?))
}
