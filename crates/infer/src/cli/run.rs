//! `infer` without `--plan`, in named steps: settings (device, threads, sampler), prompt
//! resolution, streaming generation, and the report.
use super::{find_checkpoint, parse_ids, plan, Args, Format};
use crate::generation::{check_prompt, generate, GenOptions, Generation};
use crate::limits;
use crate::report::{Report, Settings};
use crate::source::{self, Source};
use crate::stream::Utf8Stream;
use anyhow::{bail, Context, Result};
use runtime::device::{device_name, parse_device};
use runtime::Precision;
use std::io::Write;
use std::path::Path;
use tch::Device;

/// Run the command: plan, or load, generate (streaming in text mode) and report.
pub fn run(args: &Args) -> Result<()> {
    let device = parse_device(&args.device)?;
    limits::check_threads(args.threads)?;
    if args.threads > 0 {
        tch::set_num_threads(args.threads as i32);
    }
    let mut spec = args.spec(device, args.resolve_dtype(device)?);
    if args.dtype == Precision::Auto {
        let (cfg, _) = source::resolve(&spec)?;
        let bytes = model::accounting::weight_bytes(&cfg, 4) as i64;
        let choice = limits::auto_dtype(bytes, device, spec.dtype).or_else(|| {
            let work = limits::GenWork {
                fp32_weight_bytes: bytes,
                prompt_tokens: prompt_estimate(args),
                new_tokens: args.max_new_tokens,
                batch: args.batch,
            };
            // Only cached decode streams the weights; a quantized model's are int8/int4.
            let decode = args.kv_cache && args.quant.is_none();
            let m = runtime::hardware::machine(device).ok()?;
            let gemv = runtime::gemv::native_bf16();
            decode
                .then(|| limits::auto_bf16_for_decode(&work, device, spec.dtype, &m, gemv))
                .flatten()
        });
        if let Some((dtype, why)) = choice {
            spec.dtype = dtype;
            tracing::info!("{why}");
        }
    }
    if args.plan {
        return plan(args, &spec);
    }
    limits::check_batch_range(args.batch)?;
    let sampler = args.sampler();
    sampler.validate()?;
    let prompt_ids = args.prompt_ids.as_deref().map(parse_ids).transpose()?;
    let scheme = crate::quant::scheme(args.quant.as_deref(), args.group_size)?;
    let mut src = source::load(&spec)?;
    if let Some(q) = scheme {
        crate::quant::apply(&mut src, q, args.save_quant.as_deref())?;
    }
    if args.threads == 0 && device == Device::Cpu {
        let bytes = model::quant::weight_bytes(&src.vs, &src.model).total();
        if let Some((n, why)) = limits::auto_threads(bytes, args.batch) {
            tch::set_num_threads(n);
            tracing::info!("{why}");
        }
    }
    let prompt = resolve_prompt(args, &src, prompt_ids)?;
    check_prompt(
        &src.model,
        std::slice::from_ref(&prompt),
        args.max_new_tokens,
    )?;
    let positions = prompt.len() + args.max_new_tokens;
    let dtype_bytes = src.model.settings.dtype.bytes();
    limits::check_batch(&src.model.cfg, args.batch, positions, dtype_bytes)?;
    if src.random_weights {
        note_random_weights(args, &src);
    }
    let opts = GenOptions {
        max_new_tokens: args.max_new_tokens,
        kv_cache: args.kv_cache,
        sampler,
        eos: if args.ignore_eos {
            Vec::new()
        } else {
            src.eos.clone()
        },
        seed: args.seed,
    };
    let text_mode = args.format == Format::Text;
    let mut out = std::io::stdout().lock();
    let shown = src.decode(&prompt).unwrap_or_else(|| join_ids(&prompt));
    let (gen, tail) = stream(args, &src, &opts, &prompt, &shown, &mut out)?;
    let texts: Option<Vec<String>> = gen.ids.iter().map(|ids| src.decode(ids)).collect();
    let report = Report::new(
        &gen,
        texts.clone(),
        prompt,
        settings(args, &src, &opts, device),
    );
    if text_mode {
        let _ = writeln!(out, "{tail}");
        for (i, ids) in gen.ids.iter().enumerate().skip(1) {
            let body = match &texts {
                Some(t) => t[i].clone(),
                None => format!(" {}", join_ids(ids)),
            };
            let _ = writeln!(out, "--- sequence {i} ---\n{shown}{body}");
        }
        eprint!("{}", report.text());
    } else {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    }
    Ok(())
}

/// The prompt: `--prompt-ids` (checked against the vocabulary), `--prompt` (tokenised),
/// else the model's default prompt.
/// The prompt's length before a tokenizer is loaded: the ids given, a text's bytes (at least
/// its tokens), or 16 for the default prompt (GPT-2's default text is a few tokens).
fn prompt_estimate(args: &Args) -> usize {
    match (&args.prompt_ids, &args.prompt) {
        (Some(ids), _) => parse_ids(ids).map_or(1, |v| v.len()),
        (None, Some(text)) => text.len(),
        (None, None) => 16,
    }
    .max(1)
}

fn resolve_prompt(args: &Args, src: &Source, prompt_ids: Option<Vec<i64>>) -> Result<Vec<i64>> {
    Ok(match (prompt_ids, &args.prompt) {
        (Some(ids), _) => {
            let vocab = src.model.cfg.vocab_size as i64;
            if let Some(bad) = ids.iter().find(|&&i| i >= vocab) {
                bail!(
                    "--prompt-ids: id {bad} is outside the vocabulary of {} (0..{vocab})",
                    src.label
                );
            }
            ids
        }
        (None, Some(text)) => src.encode(text)?,
        (None, None) => src.default_prompt(),
    })
}

/// Random weights produce noise: say so, and point at a trained checkpoint if one exists.
fn note_random_weights(args: &Args, src: &Source) {
    eprintln!(
        "note: {}: the output is noise; this run measures speed only",
        src.label
    );
    if args.model.is_none() && args.checkpoint.is_none() {
        if let Some(ck) = find_checkpoint(Path::new("runs")) {
            eprintln!(
                "hint: a trained checkpoint exists; try --checkpoint {}",
                ck.display()
            );
        }
    }
}

/// Generate, streaming the first sequence to `out` in text mode (prompt first); returns
/// the generation and the text still buffered (an incomplete UTF-8 tail).
fn stream(
    args: &Args,
    src: &Source,
    opts: &GenOptions,
    prompt: &[i64],
    shown: &str,
    out: &mut impl Write,
) -> Result<(Generation, String)> {
    let text_mode = args.format == Format::Text;
    if text_mode {
        // A closed stdout (e.g. `| head`) must not stop the measurement: write errors are
        // ignored in text mode.
        let _ = write!(out, "{shown}").and_then(|_| out.flush());
    }
    let mut utf8 = Utf8Stream::default();
    let prompts = vec![prompt.to_vec(); args.batch];
    let gen = generate(&src.model, &prompts, opts, |step| {
        let Some(id) = step[0].filter(|_| text_mode) else {
            return;
        };
        let piece = match &src.tokenizer {
            Some(_) if opts.eos.contains(&id) => String::new(),
            Some(tok) => utf8.push(&tok.decode_bytes(&[id as u32])),
            None => format!(" {id}"),
        };
        let _ = write!(out, "{piece}").and_then(|_| out.flush());
    })
    .with_context(|| {
        // Non-finite logits from finite weights: name the weights file at fault.
        let dir = args
            .model
            .clone()
            .or(args.checkpoint.as_deref().map(limits::resolve_checkpoint));
        dir.map_or(src.label.clone(), |d| {
            d.join("model.safetensors").display().to_string()
        })
    })?;
    Ok((gen, utf8.finish()))
}

/// What the run used, for the report.
fn settings(args: &Args, src: &Source, opts: &GenOptions, device: Device) -> Settings {
    let (cfg, run) = (&src.model.cfg, &src.model.settings);
    Settings {
        source: src.label.clone(),
        n_layer: cfg.n_layer,
        n_head: cfg.n_head,
        n_kv_heads: cfg.n_kv_heads,
        head_dim: cfg.head_dim(),
        block_size: cfg.block_size,
        dtype: run.dtype,
        dtype_bytes: run.dtype.bytes(),
        attention: run.kernel,
        kv_cache: args.kv_cache,
        batch: args.batch,
        threads: tch::get_num_threads(),
        device: device_name(device),
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        seed: args.seed,
        max_new_tokens: args.max_new_tokens,
        eos: opts.eos.clone(),
        quant: src.model.head_q.as_ref().map(|q| q.scheme().label()),
        weight_bytes: model::quant::weight_bytes(&src.vs, &src.model).total(),
    }
}

fn join_ids(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(" ")
}
