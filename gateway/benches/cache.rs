//! The response cache's hit path: key (one body part, the JSON parsed once), SHA-256, the
//! memory lookup, the answer handed back, per message of a cached route.

use wsgate::bench::CacheMemoryHit;

fn main() {
    divan::main();
}

const MESSAGE: &str = r#"{"action":"quote","symbol":"AAPL"}"#;

#[divan::bench(sample_size = 200)]
fn memory_hit(bencher: divan::Bencher<'_, '_>) {
    let cache = CacheMemoryHit::new(MESSAGE);
    assert!(cache.hit(MESSAGE) > 0, "the entry is there");
    bencher.bench_local(|| cache.hit(divan::black_box(MESSAGE)));
}

#[divan::bench(sample_size = 200)]
fn memory_miss(bencher: divan::Bencher<'_, '_>) {
    let cache = CacheMemoryHit::new(MESSAGE);
    let other = r#"{"action":"quote","symbol":"MSFT"}"#;
    bencher.bench_local(|| cache.hit(divan::black_box(other)));
}
