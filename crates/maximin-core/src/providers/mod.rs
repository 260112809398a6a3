//! One provider trait per capability: what the use-cases call, implemented
//! alike by local engines (through a wrapper over the engine traits of
//! [`crate::engines`]) and by upstreams. The [`crate::engines::Engines`]
//! registry maps a catalog `engine` name to a provider: a local engine's
//! name, or `upstream:NAME`.

pub mod media;
pub mod speech;
