//! The quantization ladder's Tiny Shakespeare row: the val loss of a char model trained by
//! the training loop, before and after quantization, on fixed batches of its val split.
mod common;

use experiments::quant::{charval, Rung};

#[test]
fn a_trained_char_model_is_scored_before_and_after_quantization() {
    let Some(_) = common::corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    common::train_tiny(dir.path(), &[], false, None).unwrap();
    let run = dir.path().join("run");
    let ckpt = charval::find(&run).expect("the run's newest checkpoint");

    let dense = charval::measure(&ckpt, Rung::Baseline).unwrap();
    assert_eq!(dense.val_loss, dense.dense_val_loss);
    assert_eq!(dense.step, 8);
    // An 8-step model is still near the uniform loss ln(65) ≈ 4.17, and finite.
    assert!(dense.dense_val_loss.is_finite() && dense.dense_val_loss < 4.4, "{dense:?}");

    let int8 = charval::measure(&ckpt, Rung::Int8).unwrap();
    assert_eq!(int8.dense_val_loss, dense.dense_val_loss, "the same batches");
    assert_ne!(int8.val_loss, int8.dense_val_loss, "the weights did change");
    assert!(int8.delta_percent().abs() < 1.0, "{int8:?}");

    // A folder without a checkpoint is skipped, not an error.
    assert!(charval::find(&dir.path().join("nothing")).is_none());
}
