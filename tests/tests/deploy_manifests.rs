//! The deployment files under `deploy/` parse and carry what running cairn
//! safely needs: every Deployment runs one of our binaries as non-root
//! with a read-only root, gRPC health probes on the operations port,
//! resource requests, its own keys from a Secret, a Service and a
//! PodDisruptionBudget; the audit log has one sequencer; kustomizations
//! name files that exist; the container build is multi-stage with a
//! non-root runtime; the compose file runs the services as non-root.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn load(path: &Path) -> Vec<Yaml> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn get<'a>(y: &'a Yaml, path: &str) -> &'a Yaml {
    path.split('.').fold(y, |y, k| &y[k])
}

fn str_at<'a>(y: &'a Yaml, path: &str) -> &'a str {
    get(y, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string in {y:?}"))
}

/// Every YAML document under `dir`, by file.
fn documents(dir: &Path) -> BTreeMap<PathBuf, Vec<Yaml>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.insert(p.clone(), load(&p));
            }
        }
    }
    out
}

#[test]
fn kubernetes_manifests_carry_the_required_fields() {
    let k8s = deploy().join("k8s");
    let all = documents(&k8s);
    assert!(all.len() >= 8, "{:?}", all.keys());
    let base: Vec<&Yaml> = all
        .iter()
        .filter(|(p, _)| p.starts_with(k8s.join("base")))
        .flat_map(|(_, docs)| docs.iter())
        .collect();
    let of_kind = |kind: &str| -> Vec<&Yaml> {
        base.iter()
            .copied()
            .filter(|d| d["kind"].as_str() == Some(kind))
            .collect()
    };
    let deployments = of_kind("Deployment");
    let names: Vec<&str> = deployments
        .iter()
        .map(|d| str_at(d, "metadata.name"))
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    for want in ["cairn-audit", "cairn-intake", "cairn-evals"] {
        assert!(names.contains(&want), "{want} missing: {names:?}");
    }
    let services = of_kind("Service");
    let budgets = of_kind("PodDisruptionBudget");
    for d in &deployments {
        let name = str_at(d, "metadata.name");
        let labels = get(d, "spec.template.metadata.labels");
        let selector = get(d, "spec.selector.matchLabels");
        for (k, v) in selector.as_hash().unwrap() {
            assert_eq!(
                &labels[k.as_str().unwrap()],
                v,
                "{name}: selector vs labels"
            );
        }
        assert!(get(d, "spec.replicas").as_i64().unwrap() >= 1, "{name}");
        let pod = get(d, "spec.template.spec");
        assert_eq!(
            pod["securityContext"]["runAsNonRoot"].as_bool(),
            Some(true),
            "{name}"
        );
        assert_ne!(
            pod["securityContext"]["runAsUser"].as_i64(),
            Some(0),
            "{name}"
        );
        assert_eq!(
            pod["automountServiceAccountToken"].as_bool(),
            Some(false),
            "{name}"
        );
        let containers = pod["containers"].as_vec().unwrap();
        assert_eq!(containers.len(), 1, "{name}");
        let c = &containers[0];
        let binary = c["command"][0].as_str().unwrap();
        assert_eq!(binary, name, "{name} runs {binary}");
        let config = c["command"].as_vec().unwrap();
        let config_file = config
            .iter()
            .position(|a| a.as_str() == Some("--config"))
            .map(|i| config[i + 1].as_str().unwrap())
            .unwrap_or_else(|| panic!("{name} has no --config"));
        let file_name = Path::new(config_file).file_name().unwrap();
        assert!(
            k8s.join("base/config").join(file_name).exists(),
            "{name}: {config_file} is not in base/config"
        );
        assert_eq!(
            c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
            Some(true)
        );
        assert_eq!(
            c["securityContext"]["allowPrivilegeEscalation"].as_bool(),
            Some(false)
        );
        assert!(
            c["resources"]["requests"]["cpu"].as_str().is_some(),
            "{name}"
        );
        assert!(
            c["resources"]["requests"]["memory"].as_str().is_some(),
            "{name}"
        );
        assert!(
            c["resources"]["limits"]["memory"].as_str().is_some(),
            "{name}"
        );
        let ops = c["ports"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|p| p["name"].as_str() == Some("ops"))
            .and_then(|p| p["containerPort"].as_i64())
            .unwrap_or_else(|| panic!("{name} has no ops port"));
        for probe in ["readinessProbe", "livenessProbe"] {
            assert_eq!(
                c[probe]["grpc"]["port"].as_i64(),
                Some(ops),
                "{name}: {probe} must be gRPC health on the ops port"
            );
        }
        let health = c["readinessProbe"]["grpc"]["service"].as_str().unwrap();
        assert!(
            health.starts_with("cairn."),
            "{name}: readiness on {health}"
        );
        // Its own keys from its own Secret; the database URL from a Secret.
        let volumes = pod["volumes"].as_vec().unwrap();
        let keys = volumes
            .iter()
            .find_map(|v| v["secret"]["secretName"].as_str())
            .unwrap_or_else(|| panic!("{name} mounts no Secret"));
        assert_eq!(keys, format!("{name}-keys"));
        let env = c["env"].as_vec().unwrap();
        let pg = env
            .iter()
            .find(|e| e["name"].as_str() == Some("CAIRN_POSTGRES"))
            .unwrap_or_else(|| panic!("{name}: no CAIRN_POSTGRES"));
        assert!(pg["valueFrom"]["secretKeyRef"]["name"].as_str().is_some());
        // A Service and a budget that select it.
        let selects = |o: &Yaml, path: &str| {
            get(o, path)
                .as_hash()
                .is_some_and(|h| h.iter().all(|(k, v)| &labels[k.as_str().unwrap()] == v))
        };
        assert!(
            services.iter().any(|s| selects(s, "spec.selector")),
            "{name} has no Service"
        );
        assert!(
            budgets
                .iter()
                .any(|b| selects(b, "spec.selector.matchLabels")),
            "{name} has no PodDisruptionBudget"
        );
        if name == "cairn-audit" {
            assert_eq!(get(d, "spec.replicas").as_i64(), Some(1), "one sequencer");
            assert_eq!(str_at(d, "spec.strategy.type"), "Recreate");
            assert_eq!(health, "cairn.audit.v1.AuditLog");
        } else {
            assert!(get(d, "spec.replicas").as_i64().unwrap() >= 2, "{name}");
        }
    }

    // Every kustomization names files that exist (the dev overlay's
    // generated PKI aside).
    for (path, docs) in &all {
        if path.file_name().unwrap() != "kustomization.yaml" {
            continue;
        }
        let dir = path.parent().unwrap();
        let k = &docs[0];
        assert_eq!(
            k["kind"].as_str(),
            Some("Kustomization"),
            "{}",
            path.display()
        );
        let mut files: Vec<&str> = Vec::new();
        files.extend(
            k["resources"]
                .as_vec()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap()),
        );
        if let Some(patches) = k["patches"].as_vec() {
            files.extend(patches.iter().map(|p| p["path"].as_str().unwrap()));
        }
        for generator in ["configMapGenerator", "secretGenerator"] {
            for g in k[generator].as_vec().map(Vec::as_slice).unwrap_or(&[]) {
                for f in g["files"].as_vec().map(Vec::as_slice).unwrap_or(&[]) {
                    let f = f.as_str().unwrap();
                    files.push(f.split_once('=').map_or(f, |(_, p)| p));
                }
            }
        }
        for f in files {
            if f.starts_with("pki/") {
                continue;
            }
            assert!(
                dir.join(f).exists(),
                "{}: {f} does not exist",
                path.display()
            );
        }
    }
}

#[test]
fn the_container_build_is_multi_stage_and_runs_as_non_root() {
    let text = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
    let froms: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().to_ascii_uppercase().starts_with("FROM "))
        .collect();
    assert!(froms.len() >= 2, "not multi-stage: {froms:?}");
    let runtime = text.rsplit_once(froms[froms.len() - 1]).unwrap().1;
    let user = runtime
        .lines()
        .find_map(|l| l.trim().strip_prefix("USER "))
        .expect("the runtime stage sets no USER");
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "{user}"
    );
    for bin in ["cairn-audit", "cairn-intake", "cairn-evals"] {
        assert!(text.contains(&format!("--bin {bin}")), "{bin} is not built");
    }
    assert!(text.contains("--locked"));
}

/// `y` with YAML merge keys (`<<: *anchor`, which compose files use)
/// applied: the anchored mapping's entries, under the mapping's own.
fn merged(y: &Yaml) -> Yaml {
    let Some(h) = y.as_hash() else {
        return y.clone();
    };
    let mut out = match h.get(&Yaml::String("<<".into())) {
        Some(base) => merged(base).into_hash().unwrap_or_default(),
        None => Default::default(),
    };
    for (k, v) in h {
        if k.as_str() != Some("<<") {
            out.insert(k.clone(), merged(v));
        }
    }
    Yaml::Hash(out)
}

#[test]
fn the_compose_file_runs_the_services_on_postgres_as_non_root() {
    let docs = load(&deploy().join("compose.yaml"));
    let c = &docs[0];
    let services = c["services"].as_hash().unwrap();
    let names: Vec<&str> = services.keys().map(|k| k.as_str().unwrap()).collect();
    for want in [
        "postgres", "audit-1", "audit-2", "intake-1", "intake-2", "evals",
    ] {
        assert!(names.contains(&want), "{want} missing: {names:?}");
    }
    let base = &c["x-service"];
    assert_eq!(base["user"].as_str(), Some("10001:10001"));
    assert_eq!(base["read_only"].as_bool(), Some(true));
    assert!(
        base["environment"]["CAIRN_POSTGRES"]
            .as_str()
            .unwrap()
            .contains("host=postgres")
    );
    for (name, s) in services {
        let name = name.as_str().unwrap();
        if name == "postgres" {
            continue;
        }
        let s = &merged(s);
        assert_eq!(s["user"].as_str(), Some("10001:10001"), "{name}");
        let bin = s["command"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no command"));
        assert!(
            name.starts_with(bin.trim_start_matches("cairn-")),
            "{name} runs {bin}"
        );
        // Least privilege: the directory and the service's own keys only.
        let own = bin.trim_start_matches("cairn-");
        let volumes = s["volumes"]
            .as_vec()
            .unwrap_or_else(|| panic!("{name} mounts nothing"));
        for v in volumes {
            let host = v.as_str().unwrap().split(':').next().unwrap();
            assert!(
                host == "./pki/directory.toml" || host == format!("./pki/services/{own}"),
                "{name} mounts {host}: a service gets the directory and its own keys only"
            );
        }
    }
}

#[test]
fn the_build_context_leaves_out_targets_and_keys() {
    let text = std::fs::read_to_string(deploy().join("../.dockerignore")).unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for want in ["target", "deploy/pki", ".cairn", "**/*.key.pem"] {
        assert!(
            lines.contains(&want),
            ".dockerignore lacks {want}: {lines:?}"
        );
    }
}
