//! Whether a stage's body may rebind the name of its context (`let ctx = ..`).
//!
//! A checkpoint races its future against the context named `ctx` where the await is written.
//! When the body never binds that name again, that is always the stage's own context, which
//! the stage's `Watch` is made on at entry: the checkpoint then needs only the `Watch`, and
//! costs one store and no comparison on each await. Otherwise each checkpoint passes the
//! `ctx` in scope, and the `Watch` moves to it when it differs.
//!
//! The answer must never be "no" when the name can be rebound. Said "yes" to:
//!
//! - any binding of the name in a pattern (`let`, `match`, `if let`, `for`, closure and nested
//!   function parameters: more than needed, but simple and rare), any item or import of that
//!   name, and any glob import;
//! - any macro whose input contains the name: a `macro_rules!` binds a name its caller can use
//!   only when the caller wrote it (a `macro_rules!` defined in the body binds nothing itself);
//! - any macro other than well-known ones (the standard library's, `log`'s, `tracing`'s, and
//!   tokio's `pin!`, `join!`, `select!`, written unqualified or under their crate's name) where
//!   it could expand to statements or items (a statement, an item, a pattern) or around an
//!   await: a procedural macro can make a binding the caller sees without being given the
//!   name.

use syn::ext::IdentExt;
use syn::visit::{self, Visit};
use syn::{
    Block, Expr, ForeignItem, Ident, Item, Macro, Pat, PatIdent, Stmt, UseGlob, UseName, UseRename,
};

use super::mentions;

/// Macros that bind nothing the caller sees unless given the name: the standard library's, the
/// logging macros of `log` and `tracing`, and the `macro_rules!` of tokio and futures that
/// stages use most (`pin!` binds only the names it is given).
const WELL_KNOWN_MACROS: &[&str] = &[
    "assert",
    "assert_eq",
    "assert_ne",
    "dbg",
    "debug",
    "debug_assert",
    "debug_assert_eq",
    "debug_assert_ne",
    "eprint",
    "eprintln",
    "error",
    "event",
    "format",
    "format_args",
    "info",
    "join",
    "matches",
    "panic",
    "pin",
    "print",
    "println",
    "select",
    "select_biased",
    "todo",
    "trace",
    "try_join",
    "unimplemented",
    "unreachable",
    "vec",
    "warn",
    "write",
    "writeln",
];

/// `true` if `body` may bind `ctx` again (see the module docs for what counts).
pub(crate) fn may_rebind(body: &Block, ctx: &Ident) -> bool {
    let mut scan = Scan {
        ctx: ctx.unraw(),
        found: false,
    };
    scan.visit_block(body);
    scan.found
}

struct Scan {
    ctx: Ident,
    found: bool,
}

impl Scan {
    fn is_ctx(&self, ident: &Ident) -> bool {
        ident.unraw() == self.ctx
    }

    /// Something named `name` is bound or declared: it counts if that is the context's name.
    fn named(&mut self, name: Option<&Ident>) {
        if name.is_some_and(|ident| self.is_ctx(ident)) {
            self.found = true;
        }
    }

    /// A macro in a place where it could expand to statements, items or a pattern.
    fn binding_place(&mut self, mac: &Macro) {
        if !is_well_known(mac) {
            self.found = true;
        }
        self.macro_input(mac);
    }

    /// Whether the input of `mac` names `ctx`.
    fn macro_input(&mut self, mac: &Macro) {
        if mentions(mac.tokens.clone(), |ident| self.is_ctx(ident)) {
            self.found = true;
        }
    }
}

impl<'ast> Visit<'ast> for Scan {
    fn visit_pat_ident(&mut self, pat: &'ast PatIdent) {
        self.named(Some(&pat.ident));
        visit::visit_pat_ident(self, pat);
    }

    fn visit_pat(&mut self, pat: &'ast Pat) {
        match pat {
            Pat::Macro(mac) => self.binding_place(&mac.mac),
            _ => visit::visit_pat(self, pat),
        }
    }

    fn visit_stmt(&mut self, stmt: &'ast Stmt) {
        match stmt {
            Stmt::Macro(mac) => self.binding_place(&mac.mac),
            _ => visit::visit_stmt(self, stmt),
        }
    }

    fn visit_item(&mut self, item: &'ast Item) {
        let named = match item {
            Item::Const(item) => Some(&item.ident),
            Item::Enum(item) => Some(&item.ident),
            Item::ExternCrate(item) => Some(item.rename.as_ref().map_or(&item.ident, |r| &r.1)),
            Item::Fn(item) => Some(&item.sig.ident),
            Item::Mod(item) => Some(&item.ident),
            Item::Static(item) => Some(&item.ident),
            Item::Struct(item) => Some(&item.ident),
            Item::Trait(item) => Some(&item.ident),
            Item::TraitAlias(item) => Some(&item.ident),
            Item::Type(item) => Some(&item.ident),
            Item::Union(item) => Some(&item.ident),
            // A `macro_rules!` definition binds nothing; its uses are macros like any other.
            Item::Macro(item) if item.mac.path.is_ident("macro_rules") => return,
            Item::Macro(item) => {
                self.binding_place(&item.mac);
                item.ident.as_ref()
            }
            _ => None,
        };
        self.named(named);
        visit::visit_item(self, item);
    }

    fn visit_use_name(&mut self, name: &'ast UseName) {
        self.named(Some(&name.ident));
    }

    fn visit_use_rename(&mut self, rename: &'ast UseRename) {
        self.named(Some(&rename.rename));
    }

    fn visit_use_glob(&mut self, _: &'ast UseGlob) {
        // It may bring in anything, `ctx` included.
        self.found = true;
    }

    fn visit_foreign_item(&mut self, item: &'ast ForeignItem) {
        let named = match item {
            ForeignItem::Fn(item) => Some(&item.sig.ident),
            ForeignItem::Static(item) => Some(&item.ident),
            ForeignItem::Type(item) => Some(&item.ident),
            _ => None,
        };
        self.named(named);
        visit::visit_foreign_item(self, item);
    }

    fn visit_expr(&mut self, expr: &'ast Expr) {
        match expr {
            Expr::Macro(mac) => {
                // An expression-position macro around an await could wrap it in a binding.
                if !is_well_known(&mac.mac)
                    && mentions(mac.mac.tokens.clone(), |ident| ident == "await")
                {
                    self.found = true;
                }
                self.macro_input(&mac.mac);
            }
            _ => visit::visit_expr(self, expr),
        }
    }

    fn visit_macro(&mut self, mac: &'ast Macro) {
        // Macros in other places (types): only their input matters.
        self.macro_input(mac);
    }
}

/// The crates whose macros [`WELL_KNOWN_MACROS`] names.
const WELL_KNOWN_CRATES: &[&str] = &["alloc", "core", "futures", "log", "std", "tokio", "tracing"];

/// Whether `mac` is one of [`WELL_KNOWN_MACROS`], written unqualified or under a crate of
/// [`WELL_KNOWN_CRATES`] (`tracing::info!`): another crate's `info!` may be anything.
fn is_well_known(mac: &Macro) -> bool {
    let segments = &mac.path.segments;
    let from_known_crate = (segments.len() == 1 && mac.path.leading_colon.is_none())
        || segments
            .first()
            .is_some_and(|first| WELL_KNOWN_CRATES.iter().any(|name| first.ident == name));
    from_known_crate
        && segments
            .last()
            .is_some_and(|last| WELL_KNOWN_MACROS.iter().any(|name| last.ident == name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn rebinds(body: &Block) -> bool {
        may_rebind(body, &parse_quote!(ctx))
    }

    #[test]
    fn a_body_that_only_uses_ctx_does_not_rebind_it() {
        assert!(!rebinds(&parse_quote!({
            let (child, _cancel) = ctx.with_cancel();
            let user = ctx.value::<u8>();
            fetch(&child).await?;
            println!("{:?}", user);
            tracing::info!("done");
            let v = vec![a.await, b];
            assert_eq!(v.len(), 2);
            let y = helper!(x);
            tokio::pin!(fut);
            tokio::select! { _ = fut => {} }
            macro_rules! local {
                () => {
                    let ctx = 1;
                };
            }
            Ok(())
        })));
    }

    #[test]
    fn any_binding_of_the_name_rebinds_it() {
        for body in [
            parse_quote!({
                let ctx = 1;
            }),
            parse_quote!({
                let (ctx, _cancel) = ctx.with_cancel();
            }),
            parse_quote!({
                let r#ctx = 1;
            }),
            parse_quote!({ if let Some(ctx) = x {} }),
            parse_quote!({
                match x {
                    Wrapper { ctx, .. } => {}
                }
            }),
            parse_quote!({ for ctx in contexts {} }),
            parse_quote!({
                let f = |ctx: &Context| ctx.err();
            }),
            parse_quote!({
                fn ctx() {}
            }),
            parse_quote!({
                const ctx: u8 = 1;
            }),
        ] {
            assert!(rebinds(&body), "{}", quote::quote!(#body));
        }
    }

    #[test]
    fn a_macro_that_could_bind_it_rebinds_it() {
        for body in [
            // Given the name.
            parse_quote!({
                narrow!(ctx, 50);
            }),
            parse_quote!({
                let x = narrow!(ctx);
            }),
            parse_quote!({
                println!("{:?}", ctx.deadline());
            }),
            // Statements from a macro we do not know.
            parse_quote!({
                with_deadline!(50);
            }),
            parse_quote!({
                helpers! {}
            }),
            parse_quote!({
                let pat!() = x;
            }),
            // Around an await, from a macro we do not know.
            parse_quote!({
                let x = timed!(fetch().await);
            }),
        ] {
            assert!(rebinds(&body), "{}", quote::quote!(#body));
        }
    }
}
