//! One module per area of the hub.

pub mod auth;
pub mod files;
pub mod keys;
pub mod members;
pub mod operator;
pub mod overview;
pub mod playground;
pub mod privacy;
pub mod security;
pub mod support;
pub mod usage;
