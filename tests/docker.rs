//! The Dockerfile and its context, read as text (no Docker engine runs here or in CI): what
//! issue 16 asks of the image, so that a change that drops one of them fails.

use std::path::Path;

fn read(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

/// The instructions of the Dockerfile, continuation lines joined, comments dropped.
fn instructions() -> Vec<String> {
    let text = read("Dockerfile");
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(stripped) = line.strip_suffix('\\') {
            current.push_str(stripped);
            current.push(' ');
        } else {
            current.push_str(line);
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

#[test]
fn base_images_are_pinned_by_digest() {
    let ins = instructions();
    let froms: Vec<&String> = ins.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2);
    // Each FROM names an ARG whose default is `image:tag@sha256:<64 hex>`.
    for from in froms {
        let arg = from.split_whitespace().nth(1).unwrap().trim_start_matches("${").trim_end_matches('}');
        let default = ins.iter().find_map(|l| l.strip_prefix(&format!("ARG {arg}="))).unwrap_or_else(|| panic!("no ARG {arg}"));
        let (_, digest) = default.split_once("@sha256:").unwrap_or_else(|| panic!("{default} is not pinned by digest"));
        assert!(digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()), "{default}");
    }
}

#[test]
fn dependencies_are_built_in_their_own_layer_before_the_sources_are_copied() {
    let ins = instructions();
    let pos = |pred: &dyn Fn(&String) -> bool| ins.iter().position(pred).unwrap();
    let manifests = pos(&|l| l.starts_with("COPY Cargo.toml Cargo.lock"));
    let deps = pos(&|l| l.starts_with("RUN ") && l.contains("cargo build --profile dist --locked"));
    let sources = pos(&|l| l == "COPY src src");
    assert!(manifests < deps && deps < sources, "{ins:#?}");
}

#[test]
fn the_runtime_runs_a_stripped_binary_as_a_numeric_non_root_user_with_a_healthcheck() {
    let ins = instructions();
    // The operator's binary: the `dist` profile of Cargo.toml (release with fat LTO), stripped,
    // and the one the runtime image copies.
    assert!(ins.iter().any(|l| l.starts_with("RUN ") && l.contains("cargo build --profile dist --locked") && l.contains("strip target/dist/voisinage")));
    assert!(ins.iter().any(|l| l.starts_with("COPY --from=build /src/target/dist/voisinage ")), "{ins:#?}");
    let manifest = read("Cargo.toml");
    let dist = manifest.split("[profile.dist]").nth(1).expect("Cargo.toml has a dist profile");
    let dist = dist.split("\n[").next().unwrap_or(dist);
    assert!(dist.contains("inherits = \"release\"") && dist.contains("lto = \"fat\""), "{dist}");
    let user = ins.iter().rev().find_map(|l| l.strip_prefix("USER ")).unwrap();
    let uid = user.split(':').next().unwrap();
    assert!(uid.parse::<u32>().is_ok_and(|u| u > 0), "USER {user}");
    let health = ins.iter().find_map(|l| l.strip_prefix("HEALTHCHECK ")).unwrap();
    assert!(health.contains(r#"CMD ["voisinage", "health""#), "{health}");
    // The health subcommand's default URL follows VOISINAGE_BIND, which the image sets.
    assert!(ins.iter().any(|l| l.contains("VOISINAGE_BIND=0.0.0.0:8080")));
}

#[test]
fn the_context_leaves_out_the_target_folder_and_everything_not_copied() {
    let ignore = read(".dockerignore");
    let lines: Vec<&str> = ignore.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert_eq!(lines.first(), Some(&"*"), "everything is excluded first");
    // Every folder or file the Dockerfile copies from the context is let back in, and no more.
    let copied: Vec<String> = instructions()
        .iter()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
        .flat_map(|l| {
            let parts: Vec<&str> = l.split_whitespace().skip(1).collect();
            parts[..parts.len() - 1].iter().map(|p| p.to_string()).collect::<Vec<_>>()
        })
        .collect();
    let allowed: Vec<String> = lines[1..].iter().map(|l| l.trim_start_matches('!').trim_end_matches('/').to_string()).collect();
    let mut copied_sorted = copied.clone();
    copied_sorted.sort();
    let mut allowed_sorted = allowed.clone();
    allowed_sorted.sort();
    assert_eq!(copied_sorted, allowed_sorted);
    assert!(!allowed.iter().any(|a| a == "target"));
}
