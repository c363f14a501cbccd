//! axum-login on kv's store: `cargo run -p axum-login-demo`, then
//!
//! ```text
//! curl -c jar -d 'username=ada&password=lovelace' http://127.0.0.1:3000/login
//! curl -b jar http://127.0.0.1:3000/protected      # hello ada
//! ```
//!
//! `PORT` picks the port (default 3000).

use axum_login_demo::{Users, memory_app};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000u16);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!(
        "axum-login on kv's MemoryStore: http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, memory_app(Users::with("ada", "lovelace"))).await
}
