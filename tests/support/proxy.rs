//! A fault-injecting HTTP/1.1 proxy for the tests: it sits between eb-deploy and the emulator on
//! 127.0.0.1, names each request's AWS operation, and answers the requests a test scripts with a
//! fault instead of (or after) forwarding them.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 500 with an AWS error body (InternalFailure / InternalError).
    Status500,
    /// AWS throttling: Beanstalk's 400 `Throttling: Rate exceeded`, S3's 503 `SlowDown`.
    Throttle,
    /// The connection is reset before the request is forwarded.
    Reset,
    /// No answer for this long, then the connection is closed (the request is not forwarded).
    Stall(Duration),
    /// Forwarded, then the response body is cut short.
    Truncate,
    /// Forwarded (AWS acts on it), then the connection is reset: the answer is lost.
    LoseResponse,
}

struct Rule {
    operation: String,
    fault: Fault,
    remaining: usize,
}

/// One request the proxy saw: its operation and the fault it got, if any.
#[derive(Debug, Clone)]
pub struct Seen {
    pub operation: String,
    pub fault: Option<Fault>,
}

/// A running proxy; it lives as long as the test process.
pub struct Proxy {
    pub url: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_string();
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (r, s) = (rules.clone(), seen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (r, s, up) = (r.clone(), s.clone(), upstream.clone());
                std::thread::spawn(move || serve(stream, &up, &r, &s));
            }
        });
        Proxy { url, rules, seen }
    }

    /// The next `times` requests of `operation` get `fault` (`usize::MAX`: every one).
    pub fn inject(&self, operation: &str, fault: Fault, times: usize) {
        self.rules.lock().unwrap().push(Rule {
            operation: operation.to_string(),
            fault,
            remaining: times,
        });
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many requests of `operation` got a fault.
    pub fn faulted(&self, operation: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.operation == operation && s.fault.is_some())
            .count()
    }
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The AWS operation, from the signing scope and the method, path and query (S3) or the
    /// form's Action (Query-protocol services).
    fn operation(&self) -> String {
        let scope = self.header("authorization").unwrap_or_default();
        let service = scope
            .split("Credential=")
            .nth(1)
            .and_then(|c| c.split('/').nth(3))
            .unwrap_or_default();
        if service != "s3" {
            let form = String::from_utf8_lossy(&self.body);
            return form
                .split('&')
                .find_map(|p| p.strip_prefix("Action="))
                .unwrap_or("?")
                .to_string();
        }
        let (path, query) = self.target.split_once('?').unwrap_or((&self.target, ""));
        let keys: Vec<&str> = query
            .split('&')
            .map(|p| p.split('=').next().unwrap_or(""))
            .collect();
        let has = |k: &str| keys.contains(&k);
        let keyed = path.trim_matches('/').contains('/');
        let m = self.method.as_str();
        let op = if has("uploads") {
            if m == "POST" {
                "CreateMultipartUpload"
            } else {
                "ListMultipartUploads"
            }
        } else if has("uploadId") {
            match m {
                "PUT" => "UploadPart",
                "POST" => "CompleteMultipartUpload",
                "DELETE" => "AbortMultipartUpload",
                _ => "ListParts",
            }
        } else if !keyed {
            match m {
                "HEAD" => "HeadBucket",
                "PUT" => "CreateBucket",
                _ => "ListObjects",
            }
        } else {
            match m {
                "HEAD" => "HeadObject",
                "PUT" => "PutObject",
                "GET" => "GetObject",
                _ => "DeleteObject",
            }
        };
        op.to_string()
    }

    fn is_s3(&self) -> bool {
        self.header("authorization")
            .unwrap_or_default()
            .contains("/s3/aws4_request")
    }

    /// The request as bytes for the upstream, on a connection that closes after the answer.
    fn to_upstream(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target).into_bytes();
        for (name, value) in &self.headers {
            if name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("expect") {
                continue;
            }
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

fn read_request(reader: &mut BufReader<TcpStream>, client: &mut TcpStream) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let mut request = Request {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    if request
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").ok()?;
    }
    if request
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        // Keep the chunked framing as it is: it is forwarded untouched.
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).ok()?;
            request.body.extend_from_slice(size_line.as_bytes());
            let size = usize::from_str_radix(size_line.trim().split(';').next()?, 16).ok()?;
            if size == 0 {
                loop {
                    let mut trailer = String::new();
                    reader.read_line(&mut trailer).ok()?;
                    request.body.extend_from_slice(trailer.as_bytes());
                    if trailer == "\r\n" {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            request.body.extend_from_slice(&chunk);
        }
    } else if let Some(length) = request.header("content-length") {
        let mut body = vec![0; length.parse().ok()?];
        reader.read_exact(&mut body).ok()?;
        request.body = body;
    }
    Some(request)
}

fn serve(client: TcpStream, upstream: &str, rules: &Mutex<Vec<Rule>>, seen: &Mutex<Vec<Seen>>) {
    let mut writer = client.try_clone().unwrap();
    let mut reader = BufReader::new(client);
    while let Some(request) = read_request(&mut reader, &mut writer) {
        let operation = request.operation();
        let fault = {
            let mut rules = rules.lock().unwrap();
            let rule = rules
                .iter_mut()
                .find(|r| r.operation == operation && r.remaining > 0);
            rule.map(|r| {
                r.remaining = r.remaining.saturating_sub(1);
                r.fault
            })
        };
        seen.lock().unwrap().push(Seen {
            operation: operation.clone(),
            fault,
        });
        let request_id = format!("proxy-{}", seen.lock().unwrap().len());
        match fault {
            None => {
                let Some(answer) = forward(upstream, &request) else {
                    return;
                };
                if writer.write_all(&answer).is_err() {
                    return;
                }
                // The upstream answered `Connection: close`; so does the client's connection.
                return;
            }
            Some(Fault::Status500) | Some(Fault::Throttle) => {
                let answer = error_answer(&request, fault.unwrap(), &request_id);
                if writer.write_all(&answer).is_err() {
                    return;
                }
            }
            Some(Fault::Reset) => return reset(&writer),
            Some(Fault::Stall(pause)) => {
                std::thread::sleep(pause);
                return;
            }
            Some(Fault::Truncate) => {
                let Some(answer) = forward(upstream, &request) else {
                    return;
                };
                let cut = match answer.windows(4).position(|w| w == b"\r\n\r\n") {
                    Some(head) => head + 4 + (answer.len() - head - 4) / 2,
                    None => answer.len() / 2,
                };
                let _ = writer.write_all(&answer[..cut]);
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
            Some(Fault::LoseResponse) => {
                let _ = forward(upstream, &request);
                return reset(&writer);
            }
        }
    }
}

/// Closes with a TCP reset rather than a clean FIN.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
    let _ = stream.shutdown(Shutdown::Both);
}

/// Forwards the request and returns the answer, marked `Connection: close` (the proxy closes the
/// client's connection after passing it on).
fn forward(upstream: &str, request: &Request) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).ok()?;
    up.write_all(&request.to_upstream()).ok()?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer).ok()?;
    let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&answer[..head_end]).to_string();
    let mut out: Vec<u8> = Vec::with_capacity(answer.len() + 20);
    for line in head.split("\r\n") {
        if line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(&answer[head_end + 4..]);
    Some(out)
}

fn error_answer(request: &Request, fault: Fault, request_id: &str) -> Vec<u8> {
    let (status, reason, code, message) = match (fault, request.is_s3()) {
        (Fault::Throttle, true) => (
            503,
            "Slow Down",
            "SlowDown",
            "Please reduce your request rate.",
        ),
        (Fault::Throttle, false) => (400, "Bad Request", "Throttling", "Rate exceeded"),
        (_, true) => (
            500,
            "Internal Server Error",
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
        (_, false) => (
            500,
            "Internal Server Error",
            "InternalFailure",
            "An internal error occurred.",
        ),
    };
    let body = if request.is_s3() {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
        )
    } else {
        format!(
            "<ErrorResponse xmlns=\"http://elasticbeanstalk.amazonaws.com/docs/2010-12-01/\"><Error><Type>Receiver</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    };
    let mut headers: HashMap<&str, String> = HashMap::new();
    headers.insert("Content-Type", "text/xml".into());
    headers.insert("Content-Length", body.len().to_string());
    headers.insert("x-amzn-RequestId", request_id.to_string());
    headers.insert("x-amz-request-id", request_id.to_string());
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&body);
    out.into_bytes()
}
