//! The ONNX reader: the protobuf messages, then every tensor a graph holds (initializers
//! and the `value` of Constant nodes, or any tensor attribute) decoded and checked against
//! its dims. The model is read from memory, so external data is refused.
#![no_main]

use std::path::Path;

use fido::weights::onnx::OnnxModel;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(model) = OnnxModel::from_bytes(data, Path::new("fuzz.onnx")) else {
        return;
    };
    let graph = model.graph();
    let attribute_tensors = graph
        .node
        .iter()
        .flat_map(|n| &n.attribute)
        .filter_map(|a| a.t.as_ref());
    for tensor in graph.initializer.iter().chain(attribute_tensors) {
        if let Ok((dims, values)) = model.tensor(tensor) {
            assert_eq!(values.len(), dims.iter().product::<usize>());
        }
    }
});
