//! An offline fake of the WhatsApp Web server, on loopback, for the whatsapp
//! driver's tests (CI has no internet; nothing here reaches a release build).
//!
//! It speaks the real wire protocol far enough for a real `whatsapp-rust`
//! client: a WebSocket on `ws://127.0.0.1:PORT/ws/chat`, the Noise `XX`
//! handshake (as responder, with a certificate chain from `wacore-noise`'s test
//! support, which the client accepts only with `danger-skip-cert-chain-verify`),
//! then encrypted binary stanzas. A client that registers (no username in its
//! `ClientPayload`) is sent a `<pair-device>` with six refs, from which the
//! library makes its rotating QR codes. Unknown requests are answered with an
//! IQ error (501).
//!
//! Not yet: the `IK` handshake of a paired client, the scan (`pair-success`),
//! login (`<success>`), contacts, receipts and failures.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, anyhow, bail};
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_websockets::{Message, ServerBuilder, WebSocketStream};
use wacore_noise::framing::FrameDecoder;
use wacore_noise::test_util::build_cert_chain_bytes;
use wacore_noise::{NoiseCipher, NoiseHandshake};
use whatsapp_rust::NodeBuilder;
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::wacore::libsignal::protocol::{KeyPair, PrivateKey};
use whatsapp_rust::wacore_binary::consts::{NOISE_PATTERN_XX, WA_CONN_HEADER};
use whatsapp_rust::wacore_binary::marshal::{marshal, unmarshal_ref};
use whatsapp_rust::wacore_binary::node::Node;
use whatsapp_rust::wacore_binary::util::unpack;
use whatsapp_rust::waproto::whatsapp as wa;

/// The server's JID.
const SERVER: &str = "s.whatsapp.net";

/// What the fake saw, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A completed XX handshake; `registering` when the client has no account yet.
    Handshake { registering: bool },
    /// A stanza from the client: its tag and, for an IQ, its `xmlns` and `type`.
    Stanza { tag: String, xmlns: Option<String>, kind: Option<String> },
}

struct Shared {
    static_kp: KeyPair,
    cert_chain: Vec<u8>,
    seen: Mutex<Vec<Seen>>,
    connections: AtomicUsize,
    ids: AtomicUsize,
}

/// A running fake; stops when dropped.
pub struct FakeWhatsApp {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FakeWhatsApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn key_pair() -> KeyPair {
    loop {
        let bytes: [u8; 32] = rand::random();
        if let Ok(kp) = PrivateKey::deserialize(&bytes)
            .map_err(|e| anyhow!("{e}"))
            .and_then(|p| KeyPair::try_from(p).map_err(|e| anyhow!("{e}")))
        {
            return kp;
        }
    }
}

fn public(kp: &KeyPair) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&kp.public_key.public_key_bytes()[..32]);
    out
}

impl FakeWhatsApp {
    /// Listens on `127.0.0.1:0`.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let static_kp = key_pair();
        let cert_chain = build_cert_chain_bytes(&public(&static_kp));
        let shared = Arc::new(Shared {
            static_kp,
            cert_chain,
            seen: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            ids: AtomicUsize::new(0),
        });
        let accept = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let shared = accept.clone();
                tokio::spawn(async move {
                    shared.connections.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = serve(&shared, tcp).await {
                        tracing::debug!(error = %e, "fake whatsapp connection ended");
                    }
                });
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// The address a client dials (`WAGATE_WA_SERVER_URL`).
    pub fn url(&self) -> String {
        format!("ws://{}/ws/chat", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Everything seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Shared {
    fn saw(&self, s: Seen) {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    }
}

/// One client connection: WebSocket, frames, Noise, stanzas.
struct Conn {
    ws: WebSocketStream<TcpStream>,
    frames: FrameDecoder,
    first: bool,
}

impl Conn {
    async fn next_frame(&mut self) -> anyhow::Result<Vec<u8>> {
        loop {
            if let Some(frame) = self.frames.decode_frame() {
                return Ok(frame.to_vec());
            }
            let msg = self.ws.next().await.context("client closed")??;
            if msg.is_close() {
                bail!("client closed");
            }
            let payload = msg.into_payload();
            let mut data: &[u8] = &payload;
            if self.first {
                self.first = false;
                data = data.strip_prefix(&WA_CONN_HEADER[..]).unwrap_or(data);
            }
            self.frames.feed(data);
        }
    }

    async fn send_frame(&mut self, payload: &[u8]) -> anyhow::Result<()> {
        let framed = wacore_noise::framing::encode_frame(payload, None)?;
        self.ws.send(Message::binary(framed)).await?;
        Ok(())
    }
}

/// The transport ciphers after the handshake, as the server sees them.
struct Ciphers {
    read: NoiseCipher,
    write: NoiseCipher,
    read_n: u32,
    write_n: u32,
}

async fn serve(shared: &Shared, tcp: TcpStream) -> anyhow::Result<()> {
    let (_request, ws) = ServerBuilder::new().accept(tcp).await?;
    let mut conn = Conn { ws, frames: FrameDecoder::new(), first: true };

    // ClientHello.
    let hello = wa::HandshakeMessage::decode_from_slice(&conn.next_frame().await?)?;
    let ch = hello.client_hello.into_option().context("no client hello")?;
    if ch.r#static.is_some() {
        // IK (a paired client that cached our key): not implemented yet; the
        // client falls back or retries.
        bail!("IK handshake not supported by the fake yet");
    }
    let client_eph: [u8; 32] =
        ch.ephemeral.context("no ephemeral")?.try_into().map_err(|_| anyhow!("bad ephemeral"))?;

    // ServerHello (XX): e, ee, s, es, payload = certificate chain.
    let mut noise = NoiseHandshake::new(NOISE_PATTERN_XX, &WA_CONN_HEADER)?;
    noise.authenticate(&client_eph);
    let server_eph = key_pair();
    let server_eph_pub = public(&server_eph);
    noise.authenticate(&server_eph_pub);
    noise.mix_shared_secret(server_eph.private_key.serialize(), &client_eph)?;
    let encrypted_static = noise.encrypt(&public(&shared.static_kp))?;
    noise.mix_shared_secret(shared.static_kp.private_key.serialize(), &client_eph)?;
    let encrypted_cert = noise.encrypt(&shared.cert_chain)?;
    let server_hello = wa::HandshakeMessage {
        server_hello: whatsapp_rust::buffa::MessageField::some(wa::handshake_message::ServerHello {
            ephemeral: Some(server_eph_pub.to_vec()),
            r#static: Some(encrypted_static),
            payload: Some(encrypted_cert),
            ..Default::default()
        }),
        ..Default::default()
    };
    conn.send_frame(&server_hello.encode_to_vec()).await?;

    // ClientFinish: s, se, payload = ClientPayload.
    let finish = wa::HandshakeMessage::decode_from_slice(&conn.next_frame().await?)?;
    let cf = finish.client_finish.into_option().context("no client finish")?;
    let client_static = noise.decrypt(&cf.r#static.context("no static")?)?;
    noise.mix_shared_secret(server_eph.private_key.serialize(), &client_static)?;
    let payload = noise.decrypt(&cf.payload.context("no payload")?)?;
    let client_payload = wa::ClientPayload::decode_from_slice(&payload)?;
    let (client_write, client_read) = noise.finish()?;
    let mut ciphers = Ciphers { read: client_write, write: client_read, read_n: 0, write_n: 0 };
    let registering = client_payload.username.is_none();
    shared.saw(Seen::Handshake { registering });

    if registering {
        let id = shared.ids.fetch_add(1, Ordering::Relaxed);
        let pair_device = NodeBuilder::new("iq")
            .attrs([
                ("from", SERVER.to_owned()),
                ("type", "set".to_owned()),
                ("id", format!("fake-pair-{id}")),
                ("xmlns", "md".to_owned()),
            ])
            .children([NodeBuilder::new("pair-device")
                .children((0..6).map(|i| {
                    NodeBuilder::new("ref").bytes(format!("2@fake-ref-{id}-{i}").into_bytes()).build()
                }))
                .build()])
            .build();
        send_node(&mut conn, &mut ciphers, &pair_device).await?;
    }

    loop {
        let mut frame = conn.next_frame().await?;
        ciphers.read.decrypt_in_place_with_counter(ciphers.read_n, &mut frame)?;
        ciphers.read_n += 1;
        let plain = unpack(&frame)?;
        let node = unmarshal_ref(&plain)?;
        let attr = |k: &str| node.get_attr(k).map(|v| v.to_string());
        let tag = node.tag.to_string();
        let (xmlns, kind, id) = (attr("xmlns"), attr("type"), attr("id"));
        shared.saw(Seen::Stanza { tag: tag.clone(), xmlns, kind: kind.clone() });
        if tag == "iq" && matches!(kind.as_deref(), Some("get" | "set")) {
            let reply = NodeBuilder::new("iq")
                .attrs([
                    ("from", SERVER.to_owned()),
                    ("type", "error".to_owned()),
                    ("id", id.unwrap_or_default()),
                ])
                .children([NodeBuilder::new("error").attrs([("code", "501".to_owned())]).build()])
                .build();
            send_node(&mut conn, &mut ciphers, &reply).await?;
        }
    }
}

async fn send_node(conn: &mut Conn, ciphers: &mut Ciphers, node: &Node) -> anyhow::Result<()> {
    let mut plain = marshal(node)?;
    ciphers.write.encrypt_in_place_with_counter(ciphers.write_n, &mut plain)?;
    ciphers.write_n += 1;
    conn.send_frame(&plain).await
}
