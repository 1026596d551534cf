//! The safetensors loader and the model check: parse the header, read every tensor, and
//! compare the file against each built-in architecture's expected names and shapes (the part
//! of `Classifier::load` that runs before any GPU work).
#![no_main]

use fido::models::ModelKind;
use fido::weights::WeightFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = WeightFile::from_bytes("fuzz.safetensors", data.to_vec()) else {
        return;
    };
    let _ = file.metadata();
    for name in file.names() {
        let shape = file.shape(name).unwrap();
        let _ = file.dtype(name).unwrap();
        if let Ok(values) = file.get_f32(name) {
            assert_eq!(values.len(), shape.iter().product::<usize>());
        }
        let _ = file.expect(name, &shape);
    }
    // The class count comes from the final layer, as `Classifier::load` reads it: ResNet's
    // `fc`, VGG's and AlexNet's `classifier.6`, EfficientNet's `_fc`.
    let classes = ["fc.weight", "classifier.6.weight", "_fc.weight"]
        .iter()
        .find_map(|n| file.shape(n).ok())
        .and_then(|s| s.first().copied())
        .unwrap_or(1000);
    for kind in ModelKind::ALL {
        let expected = kind.expected_tensors(classes);
        let names: Vec<&str> = expected.iter().map(|t| t.name.as_str()).collect();
        if file.check_names(&names).is_ok() {
            for t in &expected {
                let _ = file.expect(&t.name, &t.shape);
            }
        }
    }
});
