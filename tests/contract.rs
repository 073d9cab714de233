//! The contract as other people's code sees it, read from the encoded descriptor set the crate
//! exports (and reflection serves): every service, RPC, message, field, oneof, enum and enum
//! value carries a comment; every file names its package for the languages that generate code
//! from it, alike across the package; the licence the crate declares is in the repository.
//! (`deploy/test.sh` also runs `buf lint` and `buf breaking`, see `buf.yaml`.)

use prost::Message;
use prost_types::{source_code_info::Location, DescriptorProto, EnumDescriptorProto, FileDescriptorSet};
use std::collections::{BTreeMap, HashMap};

/// Field numbers of descriptor.proto, the steps of a `SourceCodeInfo` path.
const FILE_MESSAGE: i32 = 4;
const FILE_ENUM: i32 = 5;
const FILE_SERVICE: i32 = 6;
const MESSAGE_FIELD: i32 = 2;
const MESSAGE_NESTED: i32 = 3;
const MESSAGE_ENUM: i32 = 4;
const MESSAGE_ONEOF: i32 = 8;
const ENUM_VALUE: i32 = 2;
const SERVICE_METHOD: i32 = 2;

fn descriptors() -> FileDescriptorSet {
    FileDescriptorSet::decode(dockflare::FILE_DESCRIPTOR_SET).unwrap_or_default()
}

/// The contract's own files (not google/protobuf's).
fn ours(set: &FileDescriptorSet) -> Vec<&prost_types::FileDescriptorProto> {
    set.file.iter().filter(|f| f.name().starts_with("dockflare/")).collect()
}

/// Walks the declarations of one file and names each that has no leading comment.
struct Undocumented<'a> {
    comments: HashMap<&'a [i32], &'a str>,
    file: &'a str,
    missing: Vec<String>,
}

impl<'a> Undocumented<'a> {
    fn check(&mut self, path: &[i32], what: String) {
        if self.comments.get(path).is_none_or(|c| c.trim().is_empty()) {
            self.missing.push(format!("{}: {what}", self.file));
        }
    }

    fn message(&mut self, path: Vec<i32>, message: &DescriptorProto, prefix: &str) {
        let name = format!("{prefix}{}", message.name());
        self.check(&path, format!("message {name}"));
        for (i, field) in message.field.iter().enumerate() {
            self.check(
                &[path.as_slice(), &[MESSAGE_FIELD, i as i32]].concat(),
                format!("field {name}.{}", field.name()),
            );
        }
        for (i, oneof) in message.oneof_decl.iter().enumerate() {
            // A proto3 `optional` field's synthetic oneof is not a declaration of the file.
            let synthetic = message.field.iter().any(|f| f.oneof_index == Some(i as i32) && f.proto3_optional());
            if !synthetic {
                self.check(
                    &[path.as_slice(), &[MESSAGE_ONEOF, i as i32]].concat(),
                    format!("oneof {name}.{}", oneof.name()),
                );
            }
        }
        for (i, nested) in message.nested_type.iter().enumerate() {
            if !nested.options.as_ref().is_some_and(|o| o.map_entry()) {
                self.message([path.as_slice(), &[MESSAGE_NESTED, i as i32]].concat(), nested, &format!("{name}."));
            }
        }
        for (i, nested) in message.enum_type.iter().enumerate() {
            self.enumeration([path.as_slice(), &[MESSAGE_ENUM, i as i32]].concat(), nested, &format!("{name}."));
        }
    }

    fn enumeration(&mut self, path: Vec<i32>, enumeration: &EnumDescriptorProto, prefix: &str) {
        let name = format!("{prefix}{}", enumeration.name());
        self.check(&path, format!("enum {name}"));
        for (i, value) in enumeration.value.iter().enumerate() {
            self.check(&[path.as_slice(), &[ENUM_VALUE, i as i32]].concat(), format!("enum value {}", value.name()));
        }
    }
}

#[test]
fn every_declaration_of_the_contract_is_documented() {
    let set = descriptors();
    let files = ours(&set);
    assert_eq!(files.len(), 3, "admin, agent and types: {:?}", files.iter().map(|f| f.name()).collect::<Vec<_>>());
    let mut missing = Vec::new();
    for file in files {
        let locations: &[Location] = file.source_code_info.as_ref().map(|s| s.location.as_slice()).unwrap_or_default();
        assert!(!locations.is_empty(), "{} carries no source info: comments cannot be checked", file.name());
        let mut walk = Undocumented {
            comments: locations.iter().map(|l| (l.path.as_slice(), l.leading_comments())).collect(),
            file: file.name(),
            missing: Vec::new(),
        };
        for (i, message) in file.message_type.iter().enumerate() {
            walk.message(vec![FILE_MESSAGE, i as i32], message, "");
        }
        for (i, enumeration) in file.enum_type.iter().enumerate() {
            walk.enumeration(vec![FILE_ENUM, i as i32], enumeration, "");
        }
        for (i, service) in file.service.iter().enumerate() {
            walk.check(&[FILE_SERVICE, i as i32], format!("service {}", service.name()));
            for (j, method) in service.method.iter().enumerate() {
                walk.check(
                    &[FILE_SERVICE, i as i32, SERVICE_METHOD, j as i32],
                    format!("rpc {}.{}", service.name(), method.name()),
                );
            }
        }
        missing.extend(walk.missing);
    }
    assert!(missing.is_empty(), "{} declarations have no comment:\n{}", missing.len(), missing.join("\n"));
}

#[test]
fn every_file_names_its_package_for_other_languages_alike() {
    let set = descriptors();
    let mut values: BTreeMap<&str, BTreeMap<String, Vec<&str>>> = BTreeMap::new();
    for file in ours(&set) {
        let options = file.options.clone().unwrap_or_default();
        let named = [
            ("go_package", options.go_package().to_string()),
            ("java_package", options.java_package().to_string()),
            ("java_multiple_files", options.java_multiple_files().to_string()),
            ("csharp_namespace", options.csharp_namespace().to_string()),
            ("php_namespace", options.php_namespace().to_string()),
            ("ruby_package", options.ruby_package().to_string()),
            ("objc_class_prefix", options.objc_class_prefix().to_string()),
        ];
        for (option, value) in named {
            values.entry(option).or_default().entry(value).or_default().push(file.name());
        }
    }
    for (option, by_value) in &values {
        assert_eq!(by_value.len(), 1, "{option} differs between files: {by_value:?}");
        assert!(!by_value.contains_key(""), "{option} is not set in {by_value:?}");
    }
    let go = values.get("go_package").and_then(|v| v.keys().next()).cloned().unwrap_or_default();
    assert_eq!(go, "github.com/dockflare/dockflare/gen/go/dockflare/v1;dockflarev1");
    assert_eq!(values.get("java_multiple_files").and_then(|v| v.keys().next()).map(String::as_str), Some("true"));
}

#[test]
fn the_licence_the_crate_declares_is_in_the_repository() {
    let root = env!("CARGO_MANIFEST_DIR");
    assert_eq!(env!("CARGO_PKG_LICENSE"), "GPL-3.0-only");
    let licence = std::fs::read_to_string(format!("{root}/LICENSE")).unwrap_or_default();
    assert!(
        licence.trim_start().starts_with("GNU GENERAL PUBLIC LICENSE") && licence.contains("Version 3, 29 June 2007"),
        "LICENSE at the repository's root is not the GPL version 3 text"
    );
    assert!(licence.contains("END OF TERMS AND CONDITIONS"), "LICENSE is not the full text");
}
