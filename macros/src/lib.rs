//! Procedural macros of hpx-rs. Use them through the `hpx` crate:
//! `#[hpx::main]` and `#[hpx::action]`.
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{format_ident, quote};
use syn::{parse_macro_input, FnArg, ItemFn, ReturnType, Type};

fn error(span: Span, msg: &str) -> TokenStream {
    syn::Error::new(span, msg).to_compile_error().into()
}

/// Marks `async fn main()` as the entry point of an hpx program.
///
/// `#[hpx::main]` runs main on every locality (SPMD);
/// `#[hpx::main(root_only)]` runs it on locality 0 while the others serve
/// actions. Main may return `()` or `Result<(), E>` with `E: Display`.
///
/// ```ignore
/// #[hpx::main]
/// async fn main() { /* body */ }
/// ```
/// expands to
/// ```ignore
/// fn main() -> std::process::ExitCode {
///     async fn __hpx_main() { /* body */ }
///     hpx::__private::main_spmd(__hpx_main)
/// }
/// ```
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    let input = parse_macro_input!(item as ItemFn);
    let entry = if attr.is_empty() {
        quote!(main_spmd)
    } else {
        let mode = parse_macro_input!(attr as syn::Ident);
        match mode.to_string().as_str() {
            "root_only" => quote!(main_root_only),
            "spmd" => quote!(main_spmd),
            _ => return error(mode.span(), "expected `spmd` or `root_only`"),
        }
    };
    if input.sig.asyncness.is_none() {
        return error(input.sig.fn_token.span, "#[hpx::main] needs an `async fn`");
    }
    if !input.sig.inputs.is_empty() {
        return error(
            input.sig.fn_token.span,
            "main takes no arguments: use hpx::args()",
        );
    }
    let attrs = &input.attrs;
    let vis = &input.vis;
    let name = &input.sig.ident;
    let output = &input.sig.output;
    let body = &input.block;
    quote! {
        #(#attrs)*
        #vis fn #name() -> ::std::process::ExitCode {
            async fn __hpx_main() #output #body
            ::hpx::__private::#entry(__hpx_main)
        }
    }
    .into()
}

/// The options of `#[action]`: the crate it refers to (`::hpx`, or the path
/// given as `crate = path` for crates below the `hpx` facade) and whether it
/// is `direct`.
struct ActionOptions {
    krate: syn::Path,
    direct: bool,
}

fn action_options(attr: TokenStream) -> syn::Result<ActionOptions> {
    let mut options = ActionOptions {
        krate: syn::parse_quote!(::hpx),
        direct: false,
    };
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            options.krate = meta.value()?.parse::<syn::Path>()?;
            Ok(())
        } else if meta.path.is_ident("direct") {
            options.direct = true;
            Ok(())
        } else {
            Err(meta.error("the options are `direct` and `crate = path`"))
        }
    });
    syn::parse::Parser::parse(parser, attr)?;
    Ok(options)
}

/// The crate that `#[component]` refers to: `::hpx`, or the path given as
/// `#[component(crate = path)]`.
fn crate_path(attr: TokenStream) -> syn::Result<syn::Path> {
    let mut path = syn::parse_quote!(::hpx);
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            path = meta.value()?.parse::<syn::Path>()?;
            Ok(())
        } else {
            Err(meta.error("the only option is `crate = path`"))
        }
    });
    syn::parse::Parser::parse(parser, attr)?;
    Ok(path)
}

/// Makes an `async fn` an action: callable on any locality with
/// `hpx::async_at(locality, name, args)`, `hpx::post` and
/// `hpx::broadcast_action`.
///
/// The function becomes a unit struct of the same name implementing
/// `hpx::Action` (so `name` is the value passed to `async_at`), and the body
/// stays callable locally as `name::call(args)`. The arguments are the
/// parameter itself for one parameter, a tuple otherwise (`()` for none); they
/// and the result must be serde types. An action returning `Result<T, E>`
/// (with `E: Display`) has output `T`; its `Err` reaches the caller as
/// `hpx::Error::Remote`.
///
/// An action runs on the receiving locality's worker threads, off the
/// thread that reads parcels, so a long computation never delays other
/// parcels. `#[action(direct)]`
/// marks a short handler that never blocks (it only files a message or
/// updates a table): it is polled first right where its parcel is read,
/// which saves a hand-over between threads (HPX's "direct" actions); if it
/// has to wait, it continues on a task of its own.
///
/// Crates below the `hpx` facade name the runtime crate instead:
/// `#[action(crate = hpx_runtime)]`.
#[proc_macro_attribute]
pub fn action(attr: TokenStream, item: TokenStream) -> TokenStream {
    let options = match action_options(attr) {
        Ok(options) => options,
        Err(e) => return e.to_compile_error().into(),
    };
    let input = parse_macro_input!(item as ItemFn);
    match expand_action(&options, &input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// The component a component action works on: `&T` (shared) or `&mut T`.
struct Receiver {
    ty: Type,
    exclusive: bool,
}

fn expand_action(options: &ActionOptions, input: &ItemFn) -> syn::Result<proc_macro2::TokenStream> {
    let krate = &options.krate;
    let direct = options.direct;
    let sig = &input.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span,
            "#[hpx::action] needs an `async fn`",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.ident.span(),
            "actions cannot be generic",
        ));
    }
    let mut receiver = None;
    let mut types = Vec::new();
    for (i, arg) in sig.inputs.iter().enumerate() {
        let FnArg::Typed(t) = arg else {
            return Err(syn::Error::new(
                Span::call_site(),
                "actions are free functions; a component action takes `&T` or `&mut T` first",
            ));
        };
        match (&*t.ty, i) {
            (Type::Reference(r), 0) => {
                receiver = Some(Receiver {
                    ty: (*r.elem).clone(),
                    exclusive: r.mutability.is_some(),
                })
            }
            (Type::Reference(r), _) => {
                return Err(syn::Error::new(
                    r.and_token.span,
                    "action parameters must be owned values (only the first, the component, may be a reference)",
                ))
            }
            (ty, _) => types.push(ty.clone()),
        }
    }
    let name = &sig.ident;
    let vis = &input.vis;
    let attrs = &input.attrs;
    let inputs = &sig.inputs;
    let output = &sig.output;
    let body = &input.block;
    let params: Vec<_> = (0..types.len())
        .map(|i| format_ident!("__hpx_arg{}", i))
        .collect();
    let (user_ty, destructure) = match types.len() {
        1 => {
            let t = &types[0];
            let p = &params[0];
            (quote!(#t), quote!(let #p = args;))
        }
        _ => (quote!((#(#types,)*)), quote!(let (#(#params,)*) = args;)),
    };
    let name_str = name.to_string();
    let (output_ty, wrap) = match output {
        ReturnType::Default => (quote!(()), quote!(Ok(out))),
        ReturnType::Type(_, ty) => {
            let is_result = matches!(&**ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Result"));
            if is_result {
                (
                    quote!(<#ty as #krate::ActionResult>::Ok),
                    quote!(#krate::ActionResult::into_action_result(out)
                        .map_err(|m| #krate::__private::action_error(<Self as #krate::Action>::NAME, m))),
                )
            } else {
                (quote!(#ty), quote!(Ok(out)))
            }
        }
    };
    let (args_ty, invoke_body, component_impl) = match &receiver {
        None => (
            user_ty.clone(),
            quote! {
                #destructure
                async move {
                    let out = #name::call(#(#params),*).await;
                    #wrap
                }
            },
            quote!(),
        ),
        Some(Receiver { ty, exclusive }) => {
            let (access, borrow) = if *exclusive {
                (quote!(component_exclusive), quote!(&mut *__hpx_guard))
            } else {
                (quote!(component_shared), quote!(&*__hpx_guard))
            };
            (
                quote!((#krate::GlobalId, #user_ty)),
                quote! {
                    let (__hpx_gid, args) = args;
                    #destructure
                    async move {
                        #[allow(unused_mut)]
                        let mut __hpx_guard = #krate::__private::#access::<#ty>(__hpx_gid).await?;
                        let out = #name::call(#borrow, #(#params),*).await;
                        #wrap
                    }
                },
                quote! {
                    impl #krate::ComponentAction for #name {
                        type Component = #ty;
                        type UserArgs = #user_ty;
                    }
                },
            )
        }
    };
    Ok(quote! {
        #(#attrs)*
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #name;

        impl #name {
            /// Runs the action's body here, as a plain async function.
            #vis async fn call(#inputs) #output #body
        }

        impl #krate::Action for #name {
            type Args = #args_ty;
            type Output = #output_ty;
            const NAME: &'static str = concat!(module_path!(), "::", #name_str);
            const ID: u64 = #krate::__private::action_id(<Self as #krate::Action>::NAME);
            const DIRECT: bool = #direct;

            fn invoke(args: Self::Args) -> impl ::std::future::Future<Output = #krate::Result<Self::Output>> + ::std::marker::Send + 'static {
                #invoke_body
            }
        }

        #component_impl

        #krate::__private::inventory::submit! {
            #krate::__private::ActionEntry::of::<#name>()
        }
    })
}

/// Declares a type that can live as a component (see `hpx::new_component`):
/// implements `hpx::ComponentType` and registers the type so every locality
/// can construct one. The type must be serde-serializable, `Send` and `Sync`.
///
/// ```ignore
/// #[hpx::component]
/// #[derive(serde::Serialize, serde::Deserialize, Default)]
/// struct Counter { value: u64 }
/// ```
#[proc_macro_attribute]
pub fn component(attr: TokenStream, item: TokenStream) -> TokenStream {
    let krate = match crate_path(attr) {
        Ok(path) => path,
        Err(e) => return e.to_compile_error().into(),
    };
    let input = parse_macro_input!(item as syn::DeriveInput);
    if !input.generics.params.is_empty() {
        return error(input.ident.span(), "component types cannot be generic");
    }
    let name = &input.ident;
    let name_str = name.to_string();
    quote! {
        #input

        impl #krate::ComponentType for #name {
            const NAME: &'static str = concat!(module_path!(), "::", #name_str);
        }

        #krate::__private::inventory::submit! {
            #krate::__private::ComponentTypeEntry::of::<#name>()
        }
    }
    .into()
}

/// Registers a function on array elements, run where the data lives:
///
/// - `#[hpx::element_fn(map)] fn f(x: T) -> T` for `map_inplace`;
/// - `#[hpx::element_fn(predicate)] fn f(x: T) -> bool` for `count_if`;
/// - `#[hpx::element_fn(reduce)] fn f(lower: T, upper: T) -> T` for `reduce_with`;
/// - `#[hpx::element_fn(index)] fn f(i: usize) -> T` for `from_fn`.
///
/// The function becomes a unit struct of the same name, passed where the
/// array method wants the function; its body stays callable as `f::call(..)`.
#[proc_macro_attribute]
pub fn element_fn(attr: TokenStream, item: TokenStream) -> TokenStream {
    let input = parse_macro_input!(item as ItemFn);
    match expand_element_fn(attr.into(), &input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand_element_fn(
    attr: proc_macro2::TokenStream,
    input: &ItemFn,
) -> syn::Result<proc_macro2::TokenStream> {
    let mut kind: Option<syn::Ident> = None;
    let mut krate: syn::Path = syn::parse_quote!(::hpx);
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            krate = meta.value()?.parse()?;
            Ok(())
        } else if let Some(ident) = meta.path.get_ident() {
            kind = Some(ident.clone());
            Ok(())
        } else {
            Err(meta.error("expected map, predicate, reduce or index"))
        }
    });
    syn::parse::Parser::parse2(parser, attr)?;
    let kind = kind.ok_or_else(|| {
        syn::Error::new(
            Span::call_site(),
            "say which kind: map, predicate, reduce or index",
        )
    })?;
    let sig = &input.sig;
    if sig.asyncness.is_some() || !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.ident.span(),
            "an element function is a plain, non-generic fn",
        ));
    }
    let types: Vec<Type> = sig
        .inputs
        .iter()
        .map(|a| match a {
            FnArg::Typed(t) => Ok((*t.ty).clone()),
            FnArg::Receiver(r) => Err(syn::Error::new(r.self_token.span, "no self here")),
        })
        .collect::<syn::Result<_>>()?;
    let ReturnType::Type(_, out) = &sig.output else {
        return Err(syn::Error::new(
            sig.ident.span(),
            "an element function returns a value",
        ));
    };
    let name = &sig.ident;
    let vis = &input.vis;
    let attrs = &input.attrs;
    let inputs = &sig.inputs;
    let body = &input.block;
    let name_str = name.to_string();
    let (trait_name, elem, method, entry) = match (kind.to_string().as_str(), types.as_slice()) {
        ("map", [t]) => (quote!(ElementMap), quote!(#t), quote!(fn apply(x: #t) -> #t { #name::call(x) }), quote!(map)),
        ("predicate", [t]) => (
            quote!(ElementPredicate),
            quote!(#t),
            quote!(fn test(x: #t) -> bool { #name::call(x) }),
            quote!(predicate),
        ),
        ("reduce", [t, _]) => (
            quote!(ElementReduce),
            quote!(#t),
            quote!(fn combine(lower: #t, upper: #t) -> #t { #name::call(lower, upper) }),
            quote!(reduce),
        ),
        ("index", [_]) => (quote!(IndexFn), quote!(#out), quote!(fn at(index: usize) -> #out { #name::call(index) }), quote!(index)),
        (k, _) => {
            return Err(syn::Error::new(
                kind.span(),
                format!("`{k}` with {} parameters: expected map(x), predicate(x), reduce(lower, upper) or index(i)", types.len()),
            ))
        }
    };
    Ok(quote! {
        #(#attrs)*
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #name;

        impl #name {
            /// The function itself.
            #vis fn call(#inputs) -> #out #body
        }

        impl #krate::#trait_name for #name {
            type Elem = #elem;
            const NAME: &'static str = concat!(module_path!(), "::", #name_str);
            #method
        }

        #krate::__private::inventory::submit! {
            #krate::ElementFnEntry::#entry::<#name>()
        }
    })
}
