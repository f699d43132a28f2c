//! `--quant int8|int4 [--group-size N]` and `--save-quant DIR`: weight-only quantization of
//! the loaded model (`model::quant`), and the scheme `--plan` counts bytes with. A folder
//! saved with `--save-quant` loads quantized with `--model DIR` (its `quant.json` says how).
use crate::source::Source;
use anyhow::{bail, Context, Result};
use model::quant::{self, Scheme};
use std::path::Path;

/// The scheme the flags ask for, if any.
pub fn scheme(quant: Option<&str>, group_size: Option<i64>) -> Result<Option<Scheme>> {
    match (quant, group_size) {
        (Some(q), g) => Scheme::parse(q, g).map(Some),
        (None, Some(g)) => bail!("--group-size {g} needs --quant int4"),
        (None, None) => Ok(None),
    }
}

/// The scheme of a folder saved quantized (its `quant.json`), if `dir` is one.
pub fn folder_scheme(dir: Option<&Path>) -> Result<Option<Scheme>> {
    let Some(dir) = dir else { return Ok(None) };
    Ok(quant::store::read_quant_json(dir)?.map(|q| q.scheme))
}

/// Quantize the loaded model in place, then save it to `save` when given.
pub fn apply(src: &mut Source, scheme: Scheme, save: Option<&Path>) -> Result<()> {
    quant::quantize_model(&mut src.model, scheme, true)
        .with_context(|| format!("--quant {}: {}", scheme.label(), src.label))?;
    src.label = format!("{} ({})", src.label, scheme.label());
    let b = quant::weight_bytes(&src.vs, &src.model);
    tracing::info!(
        "{}: weights {} bytes ({} dense, {} quantized)",
        src.label,
        b.total(),
        b.dense,
        b.quantized
    );
    if let Some(dir) = save {
        quant::save(&src.vs, &mut src.model, dir)
            .with_context(|| format!("--save-quant {}", dir.display()))?;
        eprintln!("saved the quantized model to {}", dir.display());
    }
    Ok(())
}
