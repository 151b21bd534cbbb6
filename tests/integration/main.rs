//! Integration tests of the `leadex` server over real sockets: the seller
//! flow, money and caps under concurrency, and crash safety of the real
//! binary. One test binary (ripgrep style) so the suite links once.

mod admin_authz;
mod admin_flow;
mod admin_routing;
mod concurrency;
mod crash;
mod flow;
mod outage;
mod route;
mod services;
mod snapshots;
mod support;
