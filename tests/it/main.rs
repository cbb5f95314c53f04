//! The workspace's one integration-test binary (`cargo test -p postmark-tests`).

mod codegen;
mod contract;
mod errors;
mod examples;
mod fidelity;
mod paging;
mod retry;
mod server_examples;
mod tool_examples;
