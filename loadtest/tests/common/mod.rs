//! What the load-test integration tests share: a real leadex server.

use std::path::Path;

/// A leadex server started in-process on free ports with the demo
/// config and marketplace, over `data_dir`.
pub async fn start_demo_server(data_dir: &Path) -> leadex::run::Running {
    let config_path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/leadex.toml"
    ));
    let mut loaded =
        leadex_config::load(Some(config_path), std::iter::empty()).expect("the demo config loads");
    loaded.config.storage.path = data_dir.to_path_buf();
    loaded.config.server.listen = "127.0.0.1:0".parse().unwrap();
    loaded.config.admin.listen = "127.0.0.1:0".parse().unwrap();
    leadex::run::start(loaded).await.expect("server starts")
}
