//! `fido convert`: a PyTorch or TensorFlow checkpoint to safetensors, keeping tensor names.

use std::path::{Path, PathBuf};

use clap::Args;

use fido::Result;

#[derive(Args)]
pub struct ConvertArgs {
    /// The checkpoint to read.
    pub input: PathBuf,
    /// The .safetensors file to write.
    pub output: PathBuf,
}

pub fn run(args: &ConvertArgs) -> Result<()> {
    convert(&args.input, &args.output)
}

fn convert(input: &Path, output: &Path) -> fido::Result<()> {
    // A TF checkpoint is named by its `.index` file or by the prefix beside it.
    let is_tf = input.extension().is_some_and(|e| e == "index")
        || PathBuf::from(format!("{}.index", input.display())).exists();
    if is_tf {
        let r = fido::inpaint::tf::convert_tf_checkpoint(input, output)?;
        println!(
            "TensorFlow checkpoint: wrote {} tensors ({} parameters){}",
            r.tensors,
            r.parameters,
            if r.skipped.is_empty() {
                String::new()
            } else {
                format!("; skipped {}", r.skipped.join(", "))
            }
        );
        return Ok(());
    }
    let report = fido::weights::convert_pytorch(input, output)?;
    println!("{report}");
    Ok(())
}
