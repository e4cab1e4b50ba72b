//! voisinage: recommends to French communes the software and equipment already proven by their
//! neighbours, and proposes groupements de commandes to their EPCI.
//!
//! Layout: [`core`] is pure (domain types, graph, catalogue, recommendation, pooling, demo
//! simulator; no I/O); [`store`] is the only user of sled; [`http`] the only user of actix-web;
//! [`import`] derives the seeds from the shared open data; [`seeds`] embeds them; `main.rs`
//! wires them.

pub mod core;
pub mod error;
pub mod http;
pub mod import;
pub mod seeds;
pub mod store;

pub use error::{Error, Result};
