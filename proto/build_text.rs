//! Part of `build.rs`: generates, from the descriptor set, the string walk of
//! every `wagate.v1` message (`crate::text::NulFree`), which messages are
//! requests the server decodes (`crate::text::Incoming`: inputs of unary and
//! server-streaming methods) and the list of every gRPC method path
//! (`crate::text::GRPC_METHODS`). Rust names follow prost's rules (heck's
//! snake / upper camel case, keywords escaped), so the code walks the very
//! structs prost generates; a mismatch is a compile error, never a silent gap.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use heck::{ToSnakeCase, ToUpperCamelCase};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorSet};

const PACKAGE: &str = "wagate.v1";
const RUST_ROOT: &str = "crate::v1";

fn sanitize(ident: &str) -> String {
    match ident {
        "as" | "break" | "const" | "continue" | "else" | "enum" | "false" | "fn" | "for" | "if" | "impl"
        | "in" | "let" | "loop" | "match" | "mod" | "move" | "mut" | "pub" | "ref" | "return" | "static"
        | "struct" | "trait" | "true" | "type" | "unsafe" | "use" | "where" | "while" | "dyn"
        | "abstract" | "become" | "box" | "do" | "final" | "macro" | "override" | "priv" | "typeof"
        | "unsized" | "virtual" | "yield" | "async" | "await" | "try" | "gen" => format!("r#{ident}"),
        "_" | "super" | "self" | "Self" | "extern" | "crate" => format!("{ident}_"),
        s if s.starts_with(|c: char| c.is_numeric()) => format!("_{ident}"),
        _ => ident.to_owned(),
    }
}

fn snake(s: &str) -> String {
    sanitize(&s.to_snake_case())
}

fn camel(s: &str) -> String {
    sanitize(&s.to_upper_camel_case())
}

/// A message of the package: its Rust path and the module of its nested items.
struct Msg<'a> {
    rust: String,
    module: String,
    desc: &'a DescriptorProto,
}

fn collect<'a>(
    prefix_proto: &str,
    prefix_rust_mod: &str,
    messages: &'a [DescriptorProto],
    out: &mut HashMap<String, Msg<'a>>,
) {
    for m in messages {
        let name = m.name();
        let full = format!("{prefix_proto}.{name}");
        let module = format!("{prefix_rust_mod}::{}", snake(name));
        out.insert(
            full.clone(),
            Msg { rust: format!("{prefix_rust_mod}::{}", camel(name)), module: module.clone(), desc: m },
        );
        collect(&full, &module, &m.nested_type, out);
    }
}

fn is_map_entry(m: &DescriptorProto) -> bool {
    m.options.as_ref().and_then(|o| o.map_entry).unwrap_or(false)
}

enum Kind {
    Text,
    Message,
    Other,
}

fn kind(f: &FieldDescriptorProto, msgs: &HashMap<String, Msg<'_>>) -> Kind {
    match f.r#type() {
        Type::String => Kind::Text,
        Type::Message if msgs.get(f.type_name()).is_some_and(|m| !is_map_entry(m.desc)) => Kind::Message,
        _ => Kind::Other,
    }
}

/// `check(expr)` for one value of field kind `k`, returning the path built by `path` (a format string
/// expression producing the field's path, `{p}` being the nested path).
fn check_value(k: &Kind, value: &str, path: &str, nested_path: &str, out: &mut String) {
    match k {
        Kind::Text => {
            let _ = writeln!(out, "        if crate::text::has_nul({value}) {{ return Some({path}); }}");
        }
        Kind::Message => {
            let _ = writeln!(
                out,
                "        if let Some(p) = crate::text::NulFree::nul_field({value}) {{ return Some({nested_path}); }}"
            );
        }
        Kind::Other => {}
    }
}

fn walk(m: &Msg<'_>, msgs: &HashMap<String, Msg<'_>>) -> String {
    let mut body = String::new();
    let d = m.desc;
    for f in &d.field {
        let real_oneof = f.oneof_index.is_some() && !f.proto3_optional();
        if real_oneof {
            continue;
        }
        let name = f.name();
        let ident = snake(name);
        let repeated = f.label() == Label::Repeated;
        let map_entry = (f.r#type() == Type::Message)
            .then(|| msgs.get(f.type_name()))
            .flatten()
            .filter(|e| is_map_entry(e.desc));
        if let Some(entry) = map_entry {
            let key = entry.desc.field.iter().find(|x| x.number() == 1);
            let val = entry.desc.field.iter().find(|x| x.number() == 2);
            let _ = writeln!(body, "        for (k, v) in self.{ident}.iter() {{");
            let _ = writeln!(body, "        let _ = (&k, &v);");
            if let Some(key) = key {
                check_value(&kind(key, msgs), "k", &format!("format!(\"{name}[{{k}}]\")"), "", &mut body);
            }
            if let Some(val) = val {
                check_value(
                    &kind(val, msgs),
                    "v",
                    &format!("format!(\"{name}[{{k}}]\")"),
                    &format!("format!(\"{name}[{{k}}].{{p}}\")"),
                    &mut body,
                );
            }
            let _ = writeln!(body, "        }}");
            continue;
        }
        let k = kind(f, msgs);
        if matches!(k, Kind::Other) {
            continue;
        }
        if repeated {
            let _ = writeln!(body, "        for (i, v) in self.{ident}.iter().enumerate() {{");
            check_value(
                &k,
                "v",
                &format!("format!(\"{name}[{{i}}]\")"),
                &format!("format!(\"{name}[{{i}}].{{p}}\")"),
                &mut body,
            );
            let _ = writeln!(body, "        }}");
        } else if f.proto3_optional() || matches!(k, Kind::Message) {
            let _ = writeln!(body, "        if let Some(v) = &self.{ident} {{");
            check_value(
                &k,
                "v",
                &format!("\"{name}\".to_owned()"),
                &format!("format!(\"{name}.{{p}}\")"),
                &mut body,
            );
            let _ = writeln!(body, "        }}");
        } else {
            check_value(&k, &format!("&self.{ident}"), &format!("\"{name}\".to_owned()"), "", &mut body);
        }
    }
    for (index, oneof) in d.oneof_decl.iter().enumerate() {
        let members: Vec<&FieldDescriptorProto> =
            d.field.iter().filter(|f| f.oneof_index == Some(index as i32) && !f.proto3_optional()).collect();
        if members.is_empty() {
            continue; // a synthetic oneof of a proto3 `optional`
        }
        let arms: Vec<String> = members
            .iter()
            .filter_map(|f| {
                let k = kind(f, msgs);
                let name = f.name();
                let mut arm = String::new();
                check_value(
                    &k,
                    "v",
                    &format!("\"{name}\".to_owned()"),
                    &format!("format!(\"{name}.{{p}}\")"),
                    &mut arm,
                );
                (!arm.is_empty()).then(|| {
                    format!(
                        "            Some({}::{}::{}(v)) => {{\n{arm}            }}\n",
                        m.module,
                        camel(oneof.name()),
                        camel(name)
                    )
                })
            })
            .collect();
        if arms.is_empty() {
            continue;
        }
        let _ = writeln!(body, "        match &self.{} {{", snake(oneof.name()));
        for arm in arms {
            body.push_str(&arm);
        }
        let _ = writeln!(body, "            _ => {{}}\n        }}");
    }
    body
}

/// The generated Rust source.
pub fn generate(fds: &FileDescriptorSet) -> String {
    let mut msgs = HashMap::new();
    for file in fds.file.iter().filter(|f| f.package() == PACKAGE) {
        collect(&format!(".{PACKAGE}"), RUST_ROOT, &file.message_type, &mut msgs);
    }
    let mut requests = BTreeSet::new();
    let mut methods = Vec::new();
    for file in fds.file.iter().filter(|f| f.package() == PACKAGE) {
        for service in &file.service {
            for method in &service.method {
                methods.push(format!("/{PACKAGE}.{}/{}", service.name(), method.name()));
                if !method.client_streaming() {
                    requests.insert(method.input_type().to_owned());
                }
            }
        }
    }
    methods.sort();
    let mut names: Vec<&String> = msgs.keys().collect();
    names.sort();
    let mut out =
        String::from("// @generated by proto/build_text.rs from the descriptor set: do not edit.\n\n");
    let _ = writeln!(out, "/// Every gRPC method of `{PACKAGE}`, as its HTTP/2 path.");
    let _ = writeln!(out, "pub const GRPC_METHODS: &[&str] = &[");
    for m in &methods {
        let _ = writeln!(out, "    \"{m}\",");
    }
    let _ = writeln!(out, "];\n");
    for full in names {
        let m = &msgs[full];
        if is_map_entry(m.desc) {
            continue;
        }
        let body = walk(m, &msgs);
        let _ = writeln!(out, "impl crate::text::NulFree for {} {{", m.rust);
        let _ = writeln!(out, "    fn nul_field(&self) -> Option<String> {{");
        out.push_str(&body);
        let _ = writeln!(out, "        None\n    }}\n}}\n");
        let request = requests.contains(full);
        let _ = writeln!(out, "impl crate::text::Incoming for {} {{", m.rust);
        let _ = writeln!(out, "    const REQUEST: bool = {request};");
        let _ = writeln!(out, "}}\n");
    }
    out
}
