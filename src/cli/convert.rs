//! `fido convert`: a PyTorch or TensorFlow checkpoint to safetensors, keeping tensor names.

use std::path::PathBuf;

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
    println!("{}", fido::weights::convert(&args.input, &args.output)?);
    Ok(())
}
