//! Slow and greedy clients over real TCP (issue 17, item 4): half-open requests are closed
//! after the header-read timeout, one network cannot hold more than its share of
//! connections, and a well-behaved client is answered meanwhile.

use std::net::SocketAddr;
use std::time::Duration;

use tokenward_demo::client::Client;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use crate::common::{config, keys, login, start};

/// A connection from `from` (any 127.0.0.0/8 address is loopback on Linux) that sent the
/// start of a request and then stopped.
async fn half_open(server: SocketAddr, from: &str, start: &[u8]) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    stream.write_all(start).await.unwrap();
    stream
}

/// How long after `since` the server closed `stream` (EOF or reset), reading whatever it
/// sent first; `None` if it was still open after `limit`.
async fn closed_after(
    mut stream: TcpStream,
    since: Instant,
    limit: Duration,
) -> Option<(Duration, Vec<u8>)> {
    let mut sent = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => sent.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| (since.elapsed(), sent))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_requests_are_capped_per_network_and_closed_after_the_header_timeout() {
    // Long enough for a login on a busy machine: (a) must finish within it.
    let header_timeout = Duration::from_secs(3);
    let per_ip = 8;
    let mut config = config();
    config.header_read_timeout = header_timeout;
    config.max_connections = 16;
    config.max_connections_per_ip = per_ip;
    let server = start(&config, keys()).await;

    // 40 half-open requests from one address: more than its share, and more than the
    // server's whole connection allowance.
    let opened = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..40 {
        slow.push(
            half_open(
                server.addr,
                "127.0.0.2",
                b"POST /login HTTP/1.1\r\nHost: demo\r\nContent-Type: application/json\r\n",
            )
            .await,
        );
    }

    // (a) Another client is answered at once, not after the slow ones time out.
    let client = Client::new();
    let base = server.url();
    for _ in 0..3 {
        let jwks = client
            .get(&format!("{base}/.well-known/jwks.json"), None)
            .await
            .unwrap();
        assert_eq!(jwks.status, 200);
    }
    let r = login(&client, &base, "alice", "alice-password")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let answered = opened.elapsed();
    assert!(
        answered < header_timeout,
        "the well-behaved client waited {answered:?}: as long as the slow clients' header timeout"
    );

    // (b) Beyond its share, the network's connections are closed at once; the rest when the
    // header-read timeout ends. None stays open.
    let closings: Vec<_> = slow
        .into_iter()
        .map(|stream| {
            tokio::spawn(closed_after(
                stream,
                opened,
                header_timeout + Duration::from_secs(8),
            ))
        })
        .collect();
    let mut early = 0;
    let mut timed_out = 0;
    for closing in closings {
        let Some((after, sent)) = closing.await.unwrap() else {
            panic!("a half-open connection was still open after the header timeout");
        };
        assert!(
            sent.is_empty() || sent.starts_with(b"HTTP/1.1 408"),
            "unexpected answer to a half-open request: {:?}",
            String::from_utf8_lossy(&sent)
        );
        if after < header_timeout {
            early += 1;
        } else {
            timed_out += 1;
        }
    }
    assert_eq!(
        (early, timed_out),
        (40 - per_ip, per_ip),
        "(closed before the header timeout, closed by it)"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_and_trickled_bodies_are_cut_off() {
    let mut config = config();
    config.header_read_timeout = Duration::from_secs(30);
    config.idle_timeout = Duration::from_secs(1);
    config.request_timeout = Duration::from_secs(2);
    let server = start(&config, keys()).await;

    // Connected, and then not a byte: closed by the idle timeout.
    let opened = Instant::now();
    let silent = half_open(server.addr, "127.0.0.1", b"").await;
    let (after, _) = closed_after(silent, opened, Duration::from_secs(10))
        .await
        .expect("a silent connection was still open after 10 s");
    assert!(after >= Duration::from_secs(1), "closed after {after:?}");

    // Headers in, the body trickling (a byte every half second keeps it from being idle):
    // 408 when the request deadline passes.
    let opened = Instant::now();
    let mut trickle = half_open(
        server.addr,
        "127.0.0.1",
        b"POST /login HTTP/1.1\r\nHost: demo\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
    )
    .await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while opened.elapsed() < Duration::from_secs(10) {
        let _ = trickle.write_all(b" ").await;
        match tokio::time::timeout(Duration::from_millis(500), trickle.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_still_waiting) => {}
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("request_timeout"), "{answer:?}");
    assert!(opened.elapsed() >= Duration::from_secs(2));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_limits_are_refused_at_startup() {
    for set in [
        (|c: &mut tokenward_demo::server::DemoConfig| c.max_connections = 0)
            as fn(&mut tokenward_demo::server::DemoConfig),
        |c| c.max_connections_per_ip = 0,
        |c| c.header_read_timeout = Duration::ZERO,
        |c| c.idle_timeout = Duration::ZERO,
        |c| c.request_timeout = Duration::ZERO,
    ] {
        let mut config = config();
        set(&mut config);
        let err = tokenward_demo::server::spawn(&config, keys())
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("server limits: "), "{err}");
    }
}
