//! The floor the load generator compares with, measured in the same run:
//! the work every record must pay on this machine.

use std::time::{Duration, Instant};

use cairn_record::pb;
use cairn_tests::Net;

/// The work every record must pay, measured on this machine in this run
/// (one core, best case): CPU per record and the fsync bound.
pub(crate) struct Floor {
    cpu: Duration,
    fsync: Duration,
    batch: usize,
}

impl Floor {
    /// Records/s the machine could do if records cost only this: CPU on
    /// every core, or the disk's group commits, whichever binds first.
    pub(crate) fn rate(&self, cores: usize) -> f64 {
        let by_cpu = cores as f64 / self.cpu.as_secs_f64();
        let by_disk = self.batch as f64 / self.fsync.as_secs_f64();
        by_cpu.min(by_disk)
    }

    /// The same with `transport` CPU per record added (the echo run's).
    pub(crate) fn combined_rate(&self, transport: Duration, cores: usize) -> f64 {
        let by_cpu = cores as f64 / (self.cpu + transport).as_secs_f64();
        let by_disk = self.batch as f64 / self.fsync.as_secs_f64();
        by_cpu.min(by_disk)
    }
}

/// Times `f` over `n` runs and returns the mean.
fn mean(n: u32, mut f: impl FnMut()) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed() / n
}

/// One Ed25519 verification, SHA-256 over envelope and body, one AES-256-GCM
/// pass over the body, a log checkpoint signature and an fdatasync each
/// amortised over a batch of `batch` records (the most calls in flight,
/// i.e. the largest batch this run can form: the floor is a best case).
pub(crate) fn floor(net: &Net, record: &pb::SignedRecord, batch: usize) -> Floor {
    use ring::{aead, digest};
    let key = net.signing_key("uk-aisi");
    let verifying = key.verifying_key();
    let sig = key.sign(&record.envelope);
    let verify = mean(2000, || {
        verifying.verify(&record.envelope, &sig).expect("verifies");
    });
    let hash = mean(2000, || {
        let mut c = digest::Context::new(&digest::SHA256);
        c.update(&record.envelope);
        c.update(&record.body);
        std::hint::black_box(c.finish());
    });
    let aead_key = aead::LessSafeKey::new(
        aead::UnboundKey::new(&aead::AES_256_GCM, &[7; 32]).expect("aead key"),
    );
    let mut buf = record.body.clone();
    let aead_pass = mean(2000, || {
        let nonce = aead::Nonce::assume_unique_for_key([0; 12]);
        let tag = aead_key
            .seal_in_place_separate_tag(nonce, aead::Aad::empty(), &mut buf)
            .expect("seal");
        let _ = std::hint::black_box(tag);
    });
    let signer = cairn_tlog::note::NoteSigner::from_seed(
        "bench.example/log",
        cairn_tlog::note::ALG_ED25519,
        &[9; 32],
    )
    .expect("note key");
    let checkpoint = "bench.example/log\n123456\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
    let log_sig = mean(2000, || {
        std::hint::black_box(signer.sign(checkpoint).expect("sign"));
    });
    let path = net.tmp.path().join("floor-fsync");
    let mut file = std::fs::File::create(&path).expect("fsync probe");
    let page = vec![1u8; 4096];
    let fsync = mean(200, || {
        std::io::Write::write_all(&mut file, &page).expect("write");
        file.sync_data().expect("fdatasync");
    });
    let cpu = verify + hash + aead_pass + log_sig / batch as u32;
    println!(
        "floor per record: Ed25519 verify {:.1} µs + SHA-256 {:.1} µs + AES-256-GCM {:.1} µs \
         + checkpoint signature {:.1} µs / {batch} = {:.1} µs CPU; fdatasync {:.0} µs / {batch}",
        micros(verify),
        micros(hash),
        micros(aead_pass),
        micros(log_sig),
        micros(cpu),
        micros(fsync),
    );
    Floor { cpu, fsync, batch }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
