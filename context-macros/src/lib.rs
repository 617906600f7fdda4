//! Procedural macros of ctxpipe. Use them through the `ctxpipe` facade.
