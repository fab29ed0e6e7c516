//! The client side of the fault test: the steady load (hash and URL objects
//! across every node, each answer checked against the object's bytes), the
//! per-phase counts it keeps, and the table they are printed as.

use super::*;

#[derive(Clone)]
pub(super) struct Obj {
    pub(super) path: String,
    pub(super) body: Bytes,
    /// A URL object (from the origin), else a hash object.
    pub(super) url: bool,
}

#[derive(Default, Clone)]
pub(super) struct Stats {
    pub(super) requests: u64,
    pub(super) ok: u64,
    /// No response head from a node that was down on purpose (killed, restarting).
    pub(super) refused: u64,
    /// Any other request without a good, complete answer.
    pub(super) failed: u64,
    /// Of `failed`: a head came, then the body was cut (detected: hyper reports it).
    pub(super) truncated: u64,
    /// Of `failed`: answered with an error status (status -> count).
    pub(super) statuses: BTreeMap<u16, u64>,
    /// A complete 200 whose bytes differ from the object's: must never happen.
    pub(super) wrong: u64,
    pub(super) examples: Vec<String>,
}

pub(super) struct Load {
    pub(super) phase: AtomicUsize,
    pub(super) stop: AtomicBool,
    /// The node (1-based) that is down on purpose, if any.
    pub(super) down: AtomicUsize,
    pub(super) objects: Mutex<Vec<Obj>>,
    pub(super) stats: Mutex<Vec<Stats>>,
}

pub(super) enum Outcome {
    Ok(String),
    NoHead(String),
    Status(u16),
    Truncated(String),
    Wrong(usize),
}

pub(super) async fn fetch(client: &HttpClient, url: &str, expected: &Bytes) -> Outcome {
    let request = Request::get(url)
        .header("host", HOST)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
    let response = match tokio::time::timeout_at(deadline, client.request(request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(err)) => return Outcome::NoHead(format!("{err:?}")),
        Err(_) => return Outcome::NoHead("no head before the client's timeout".into()),
    };
    let status = response.status();
    let cache_status = response
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = tokio::time::timeout_at(deadline, response.into_body().collect()).await;
    if status != StatusCode::OK {
        return Outcome::Status(status.as_u16());
    }
    match body {
        Ok(Ok(body)) => {
            let body = body.to_bytes();
            if body == *expected {
                Outcome::Ok(cache_status)
            } else {
                Outcome::Wrong(body.len())
            }
        }
        Ok(Err(err)) => Outcome::Truncated(format!("{err:?}")),
        Err(_) => Outcome::Truncated("body not complete before the client's timeout".into()),
    }
}

impl Load {
    pub(super) fn record(&self, phase: usize, node: usize, path: &str, outcome: &Outcome) {
        let down = self.down.load(Ordering::SeqCst) == node;
        let mut stats = self.stats.lock().unwrap();
        let s = &mut stats[phase];
        s.requests += 1;
        let note = match outcome {
            Outcome::Ok(_) => {
                s.ok += 1;
                return;
            }
            Outcome::NoHead(_) if down => {
                s.refused += 1;
                return;
            }
            Outcome::NoHead(err) => {
                s.failed += 1;
                format!("n{node} {path}: no head: {err}")
            }
            Outcome::Status(code) => {
                s.failed += 1;
                *s.statuses.entry(*code).or_default() += 1;
                format!("n{node} {path}: status {code}")
            }
            Outcome::Truncated(err) => {
                s.failed += 1;
                s.truncated += 1;
                format!("n{node} {path}: body cut: {err}")
            }
            Outcome::Wrong(len) => {
                s.wrong += 1;
                format!("n{node} {path}: WRONG BYTES ({len} bytes)")
            }
        };
        if s.examples.len() < 5 {
            s.examples.push(note);
        }
    }
}

/// One client task: loops over the objects and the nodes until told to stop.
pub(super) async fn client_task(load: Arc<Load>, net_ips: Vec<String>, task: usize) {
    let client = client();
    let mut n = task * 7;
    while !load.stop.load(Ordering::SeqCst) {
        n += 1;
        let obj = {
            let objects = load.objects.lock().unwrap();
            objects[(n * 13 + task) % objects.len()].clone()
        };
        let node = (n + task) % NODES + 1;
        let url = format!("http://{}:8080{}", net_ips[node - 1], obj.path);
        let outcome = fetch(&client, &url, &obj.body).await;
        // The phase it ended in: a request cut by a fault belongs to the fault.
        let phase = load.phase.load(Ordering::SeqCst);
        load.record(phase, node, &obj.path, &outcome);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(super) struct Row {
    pub(super) phase: &'static str,
    pub(super) bound: Option<u64>,
    pub(super) route: String,
    pub(super) notes: String,
}

impl Row {
    pub(super) fn quiet(phase: usize) -> Row {
        Row {
            phase: PHASES[phase],
            bound: Some(0),
            route: "-".into(),
            notes: String::new(),
        }
    }
}

pub(super) fn routed_text(routed: Option<Duration>, bound: Duration) -> String {
    let seen = routed.map_or("NO".into(), secs);
    format!("{seen} / {}", secs(bound))
}

pub(super) fn table(stats: &[Stats], rows: &[Row]) -> String {
    let mut out = format!(
        "\n{:<24} {:>6} {:>6} {:>7} {:>6} {:>5} {:>5} {:>6}  {:<22} {}\n",
        "phase",
        "reqs",
        "ok",
        "refused",
        "failed",
        "cut",
        "wrong",
        "bound",
        "routed around",
        "notes"
    );
    for (row, s) in rows.iter().zip(stats) {
        let bound = row.bound.map_or("-".into(), |b| b.to_string());
        let mut notes = row.notes.clone();
        if !s.statuses.is_empty() {
            notes.push_str(&format!(" statuses {:?}", s.statuses));
        }
        out.push_str(&format!(
            "{:<24} {:>6} {:>6} {:>7} {:>6} {:>5} {:>5} {:>6}  {:<22} {}\n",
            row.phase,
            s.requests,
            s.ok,
            s.refused,
            s.failed,
            s.truncated,
            s.wrong,
            bound,
            row.route,
            notes.trim()
        ));
        for example in &s.examples {
            out.push_str(&format!("    e.g. {example}\n"));
        }
    }
    out
}

pub(super) fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
