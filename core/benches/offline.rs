//! Offline conversions from CSV bytes to hashed, scored TikTok elements, per row: what
//! `ttedge send` and the upload endpoint do before anything is sent.
//!
//! The file is the one `scripts/bench-send.sh` writes (order id, email, phone, total,
//! currency, local time), 10,000 rows. Two figures: reading alone (core's CSV reader and the
//! header rules, into cells), and the whole way (cells → row → event with its id → the
//! pipeline: normalising and SHA-256 hashing email and phone, scoring, the element).
//!
//! Run: `make bench` (with the pipeline benchmark) or
//! `cargo bench -p ttedge-core --bench offline`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use ttedge_core::mapping::NameRules;
use ttedge_core::offline::{
    csv_rows, to_collect_event, ColumnMap, FixedOffset, OfflineRow, MAX_AGE_MS,
};
use ttedge_core::pipeline::{prepare, Destination, RequestContext, Status};

const ROWS: u64 = 10_000;
/// 2026-01-01T12:00:00Z; the rows are an hour older, within the 28 days TikTok accepts.
const NOW_MS: i64 = 1_767_268_800_000;

/// The rows of `scripts/bench-send.sh`.
fn file() -> Vec<u8> {
    let mut text = String::from("Order ID,Email,Phone,Total,Currency,Created At\n");
    for i in 0..ROWS {
        text.push_str(&format!(
            "B-{i},Buyer.{i}@Example.com,+1 555 {:03} {:04},{}.{:02},usd,2026-01-01 11:00:00\n",
            i % 1000,
            i % 10000,
            i % 200,
            i % 100
        ));
    }
    text.into_bytes()
}

/// Every row through the rules; answers how many came out ready.
fn to_elements(text: &[u8], names: &NameRules, destination: &Destination) -> usize {
    let ctx = RequestContext {
        now_ms: NOW_MS as u64,
        ..RequestContext::default()
    };
    let rows = csv_rows(text, &ColumnMap::default(), None).unwrap_or_default();
    let mut ready = 0;
    for row in &rows {
        let Ok(cells) = &row.cells else { continue };
        let Ok(offline) = OfflineRow::from_cells(cells, &FixedOffset::UTC) else {
            continue;
        };
        let Ok(event) = to_collect_event(&offline, names, NOW_MS, MAX_AGE_MS) else {
            continue;
        };
        let prepared = prepare(std::slice::from_ref(&event), &ctx, destination);
        for event in &prepared.events {
            if event.status == Status::Ready {
                black_box(event.tiktok.as_ref().map(|element| element.to_json()));
                ready += 1;
            }
        }
    }
    ready
}

fn bench(c: &mut Criterion) {
    let text = file();
    let names = NameRules::default();
    let destination = Destination {
        pixel_id: "BENCHPIXEL".into(),
        test_event_code: None,
        names: names.clone(),
    };
    assert_eq!(to_elements(&text, &names, &destination), ROWS as usize);

    let mut group = c.benchmark_group("offline");
    group.throughput(Throughput::Elements(ROWS));
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("10k_rows_csv_read", |b| {
        b.iter(|| csv_rows(black_box(&text), &ColumnMap::default(), None).map(|rows| rows.len()))
    });
    group.bench_function("10k_rows_csv_to_hashed_elements", |b| {
        b.iter(|| to_elements(black_box(&text), &names, &destination))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
