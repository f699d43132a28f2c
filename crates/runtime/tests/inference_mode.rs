//! `runtime::InferenceMode` turns c10's inference mode on for its scope only (nesting
//! restores the outer state), and tensors made inside are inference tensors.
use runtime::inference::is_enabled;
use runtime::InferenceMode;
use tch::{Device, Kind, Tensor};

#[test]
fn the_guard_scopes_inference_mode_and_nests() {
    assert!(!is_enabled());
    let outside = Tensor::ones([2], (Kind::Float, Device::Cpu));
    {
        let _a = InferenceMode::enter();
        assert!(is_enabled());
        {
            let _b = InferenceMode::enter();
            assert!(is_enabled());
        }
        assert!(is_enabled(), "dropping the inner guard keeps the outer one");
        let inside = &outside * 2.0;
        assert!(inside.is_inference());
        // A normal tensor may be updated in place inside (a KV cache allocated outside).
        let mut cache = outside.shallow_clone();
        cache.copy_(&inside);
    }
    assert!(!is_enabled());
    assert!(!outside.is_inference());
    assert_eq!(outside.double_value(&[0]), 2.0);
}
