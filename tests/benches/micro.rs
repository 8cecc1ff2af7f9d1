//! Microbenchmarks (criterion, not run in CI) of the operations every
//! record and every proof is made of: build (sign + seal), verify and open
//! a record; DSSE sign and verify; leaf hashing; inclusion proof
//! generation (from a log on the embedded store of 10^5 leaves) and verification;
//! store put (with its group-committed fdatasync) and get; the checks the
//! security fixes of issue [N] added to every append and every page
//! (parsing a log leaf, sealing and opening a page token).
//!
//! cargo bench -p cairn-tests --bench micro
//! cargo bench -p cairn-tests --bench micro -- record/   # a group only

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use std::sync::Arc;

use cairn_devpki::{DevPki, DevPkiSpec, MemberFiles, layout};
use cairn_identity::{Directory, SigningKey};
use cairn_log::{Log, LogConfig};
use cairn_record::pb::{RecordKind, SharingLabel};
use cairn_record::{Recipient, RecordDraft, dsse};
use cairn_store::{EmbeddedStore, EmbeddedStoreConfig, Store, WriteBatch};
use cairn_tlog::note::{ALG_ED25519, NoteSigner};
use cairn_tlog::{hash, proof};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use cairn_testkit::MEMBERS;

struct Pki {
    _dir: tempfile::TempDir,
    directory: Directory,
    path: std::path::PathBuf,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pki");
    DevPki::generate(&DevPkiSpec::example())
        .and_then(|p| p.write_to(&path))
        .expect("dev PKI");
    let directory = Directory::load(&path.join(layout::DIRECTORY)).expect("directory");
    Pki {
        _dir: dir,
        directory,
        path,
    }
}

fn draft(pki: &Pki, body: usize) -> RecordDraft {
    let mut d = RecordDraft::new(RecordKind::Incident, SharingLabel::TlpAmber, vec![7; body]);
    d.recipients = MEMBERS
        .iter()
        .map(|m| Recipient::from_directory(&pki.directory, m).expect("recipient"))
        .collect();
    d
}

fn records(c: &mut Criterion) {
    let pki = pki();
    let key: SigningKey = MemberFiles::new(&pki.path, "uk-aisi")
        .signing_key()
        .expect("key");
    let sealing = MemberFiles::new(&pki.path, "jp-aisi")
        .sealing_key()
        .expect("key");
    let mut g = c.benchmark_group("record");
    for body in [256usize, 4096, 65536] {
        let d = draft(&pki, body);
        g.throughput(Throughput::Bytes(body as u64));
        g.bench_function(format!("build/{body}B/3 recipients"), |b| {
            b.iter(|| cairn_record::build(&d, "uk-aisi", &key).expect("build"))
        });
        let signed = cairn_record::build(&d, "uk-aisi", &key).expect("build");
        g.bench_function(format!("verify/{body}B"), |b| {
            b.iter(|| cairn_record::verify(&signed, &pki.directory).expect("verify"))
        });
        let verified = cairn_record::verify(&signed, &pki.directory).expect("verify");
        g.bench_function(format!("open/{body}B"), |b| {
            b.iter(|| verified.open("jp-aisi", Some(&sealing)).expect("open"))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("dsse");
    let payload = vec![3u8; 400]; // about a record header
    g.bench_function("sign/400B", |b| {
        b.iter(|| dsse::sign(dsse::RECORD_HEADER_TYPE, payload.clone(), &key))
    });
    let env = dsse::sign(dsse::RECORD_HEADER_TYPE, payload.clone(), &key);
    let verifying = key.verifying_key();
    g.bench_function("verify/400B", |b| {
        b.iter(|| assert!(dsse::verify(&env, &env.signatures[0], &verifying)))
    });
    g.finish();
}

fn tlog(c: &mut Criterion) {
    const SIZE: u64 = 100_000;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(EmbeddedStoreConfig::new(dir.path())).expect("store"));
    let signer =
        Arc::new(NoteSigner::from_seed("bench.example/log", ALG_ED25519, &[9; 32]).expect("key"));
    let leaf = |i: u64| {
        let mut l = i.to_be_bytes().to_vec();
        l.resize(128, 0xab);
        l
    };
    let log = rt.block_on(async {
        let log = Log::open(store.clone(), LogConfig::new(signer))
            .await
            .expect("log");
        for start in (0..SIZE).step_by(1024) {
            let batch = (start..(start + 1024).min(SIZE)).map(leaf).collect();
            log.append_batch(batch).await.expect("append");
        }
        log
    });
    let mut g = c.benchmark_group("tlog");
    let l = leaf(42);
    g.bench_function("leaf_hash/128B", |b| b.iter(|| hash::leaf_hash(&l)));
    let mut i = 0u64;
    g.bench_function("inclusion_proof/generate/1e5", |b| {
        b.iter(|| {
            i = (i + 7919) % SIZE;
            rt.block_on(log.inclusion_proof(i, SIZE)).expect("proof")
        })
    });
    let (size, path) = rt.block_on(log.inclusion_proof(42, SIZE)).expect("proof");
    let root = rt.block_on(log.root_at(size)).expect("root");
    let lh = hash::leaf_hash(&l);
    g.bench_function("inclusion_proof/verify/1e5", |b| {
        b.iter(|| proof::verify_inclusion(42, size, &lh, &path, &root).expect("verifies"))
    });
    g.finish();

    let mut g = c.benchmark_group("store");
    let mut n = 0u64;
    g.bench_function("put/4KiB (commit + fdatasync)", |b| {
        b.iter_batched(
            || {
                n += 1;
                let mut batch = WriteBatch::new();
                batch.put("bench", n.to_be_bytes().to_vec(), vec![5u8; 4096]);
                batch
            },
            |batch| rt.block_on(store.commit(batch)).expect("commit"),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("get/4KiB", |b| {
        b.iter(|| {
            rt.block_on(store.get("bench", &1u64.to_be_bytes()))
                .expect("get")
                .expect("present")
        })
    });
    g.finish();
    rt.block_on(log.close());
}

/// What issue [N] added per leaf appended and per page or cursor given.
fn checks(c: &mut Criterion) {
    let mut g = c.benchmark_group("checks");
    let leaf = cairn_testkit::log_leaf("intake", "micro");
    g.bench_function("log_leaf/parse and check", |b| {
        b.iter(|| cairn_record::leaf::check_leaf(&leaf).expect("a valid leaf"))
    });
    let tokens = cairn_service_core::Tokens::new(&[3u8; 32]).expect("tokens");
    g.bench_function("page_token/seal", |b| {
        b.iter(|| tokens.make("uk-aisi", 123_456).expect("token"))
    });
    let token = tokens.make("uk-aisi", 123_456).expect("token");
    g.bench_function("page_token/open", |b| {
        b.iter(|| tokens.read("uk-aisi", &token, "page_token").expect("opens"))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = records, tlog, checks
}
criterion_main!(benches);
