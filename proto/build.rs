//! Generates the gRPC code and a descriptor set (for server reflection) from
//! `wagate/v1/*.proto` with the pure-Rust `protox` compiler: no system protoc.

use std::path::PathBuf;

#[path = "build_text.rs"]
mod build_text;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "wagate/v1/common.proto",
        "wagate/v1/worker.proto",
        "wagate/v1/auth.proto",
        "wagate/v1/session.proto",
        "wagate/v1/message.proto",
        "wagate/v1/fleet.proto",
        "wagate/v1/user.proto",
        "wagate/v1/admin.proto",
        "wagate/v1/internal.proto",
        "wagate/v1/webhook.proto",
        "wagate/v1/usage.proto",
        "wagate/v1/media.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let fds = protox::compile(files, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("wagate_descriptor.bin");
    std::fs::write(&descriptor_path, prost::Message::encode_to_vec(&fds))?;
    println!("cargo:rerun-if-changed=build_text.rs");
    std::fs::write(out_dir.join("wagate_text.rs"), build_text::generate(&fds))?;
    tonic_prost_build::configure()
        // Every request a server decodes is checked once, in the codec: no
        // string field may hold a NUL (see `src/text.rs`).
        .codec_path("crate::codec::CheckedCodec")
        // Media bytes move as `Bytes` (no copy between the HTTP body, the
        // store and the gRPC frames).
        .bytes(".wagate.v1.UploadChunk.data")
        .bytes(".wagate.v1.DownloadChunk.data")
        .build_server(true)
        .build_client(true)
        // `WorkerService.Connect` would clash with the generated `Client::connect`
        // constructor; clients use `wagate_proto::connect()` + `Client::new` instead.
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}
