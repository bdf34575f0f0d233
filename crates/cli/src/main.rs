//! `sdx`: the command-line tool of the Support Data Exchange.
//!
//! Exit codes (a contract other tools rely on): 0 success / valid, 1 invalid input (a document that fails
//! validation, a signature that does not verify, a JWE that cannot be decrypted), 2 usage or I/O errors.
//!
//! # Layout
//! - `cmd::document`: `validate`, `convert`.
//! - `cmd::schema`: `schema --out DIR`.
//! - `cmd::jose`: `keys generate`, `sign`, `verify`, `encrypt`, `decrypt`.
//! - `cmd::pki`: `pki init`, `pki issue`, `pki request` (federation CA and node certificates, no openssl);
//!   `cmd::init`: `init` (a new node directory; also the typed settings `demo` and `bench` write).
//! - `cmd::directory`: `directory resolve|sign|verify|diff|schema` (the signed directory of responsibilities).
//! - `cmd::serve`: `serve --config node.toml`; `cmd::demo`: `demo` (use cases 2.1 and 2.2 between two nodes).
//! - `io`: reading inputs within the documented limits, writing outputs.
#![forbid(unsafe_code)]

use sdx_cli::{Outcome, cmd};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// SDX — Support Data Exchange between ticket systems of public administrations.
#[derive(Parser)]
#[command(name = "sdx", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate SDX documents (JSON or XML, detected). Exit 0 if all are valid, 1 if any is not.
    Validate {
        /// Files to check (`-` for standard input).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print the findings as JSON lines on standard output as well.
        #[arg(long)]
        json: bool,
    },
    /// Convert a document to JSON or XML (printed on standard output).
    Convert {
        /// Target format.
        #[arg(long, value_enum)]
        to: Target,
        /// The document (`-` for standard input).
        file: PathBuf,
    },
    /// Write the JSON Schema, the XSD and the Genericode codelists into DIR.
    Schema {
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Federation PKI without openssl: a CA, node certificates, certificate requests. Overwrites nothing.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// Write a new node directory: node.toml, signing key and its public JWK, TLS key and certificate (with
    /// --ca) or certificate request; prints a new API token once on standard output (stored only as its SHA-256).
    Init {
        /// This organisation's key, e.g. psw:01000115.
        #[arg(long)]
        org: sdx_model::OrgKey,
        /// The directory to write: new or empty.
        #[arg(long)]
        out: PathBuf,
        /// The organisation's name (written into message headers).
        #[arg(long)]
        name: Option<String>,
        /// Issue the TLS certificate with the federation CA in this directory (from `sdx pki init`) instead of
        /// writing a certificate request.
        #[arg(long, requires = "host")]
        ca: Option<PathBuf>,
        /// DNS name the peers reach this node by (repeat for more); required with --ca.
        #[arg(long = "host", value_name = "NAME")]
        host: Vec<String>,
        /// IP address the peers reach this node by (repeat for more).
        #[arg(long = "ip", value_name = "ADDR")]
        ip: Vec<std::net::IpAddr>,
        /// Address of the peer endpoint (mutual TLS).
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: std::net::SocketAddr,
        /// Address of the local API (plain HTTP: loopback or behind a TLS proxy).
        #[arg(long, default_value = "127.0.0.1:8080")]
        api_listen: std::net::SocketAddr,
    },
    /// Run this organisation's node (peer endpoint over mutual TLS, delivery worker) until Ctrl-C or SIGTERM.
    Serve {
        /// Settings file (TOML); `SDX_…` environment variables override it.
        #[arg(long)]
        config: PathBuf,
    },
    /// Ticket-system connectors: check a connector file against the live system, or run one alone.
    Connector {
        #[command(subcommand)]
        command: ConnectorCommand,
    },
    /// Start a MiLa and a BeLa node on loopback (mutual TLS, temporary PKI) and run use cases 2.1 and 2.2.
    /// Exit 0 only if both sides end with the same case.
    Demo {
        /// Keep the databases (SQLite files), keys and settings in DIR.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Run the nodes on this PostgreSQL server, each in its own schema (sdx_demo_mila, sdx_demo_bela; with
        /// --topology: sdx_topo_<node>).
        #[arg(long, conflicts_with = "ticket_systems")]
        database_url: Option<String>,
        /// Exchange a ticket between two real ticket systems instead (MILA:BELA of otobo, rt, redmine; default
        /// otobo:redmine), through two nodes and two connectors; starts what is not running and stops it again.
        #[arg(long, num_args = 0..=1, default_missing_value = "otobo:redmine", value_name = "MILA:BELA")]
        ticket_systems: Option<String>,
        /// Run a federation instead: `hub` — a portal, a MiLa, two candidate BeLas and a vendor behind one hub,
        /// routed by a signed directory (docs/routing.md); `federation` — 16 Land nodes and a hub, cases between
        /// random pairs. Exit 0 only if every party's view is consistent.
        #[arg(long, value_name = "TOPOLOGY", conflicts_with = "ticket_systems")]
        topology: Option<String>,
    },
    /// Benchmarks of the node.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Print the OpenAPI 3.1 document of the node's local API and peer endpoint.
    Openapi,
    /// The signed directory of responsibilities: resolve, sign, verify, diff, schema (docs/routing.md).
    Directory {
        #[command(subcommand)]
        command: cmd::directory::DirectoryCommand,
    },
    /// Key management.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Sign a document: JWS (compact) over its canonical JSON form, on standard output.
    Sign {
        /// PKCS#8 PEM private key (EC P-256 signs ES256, RSA signs PS512).
        #[arg(long)]
        key: PathBuf,
        /// The document (`-` for standard input).
        file: PathBuf,
    },
    /// Verify a JWS made by `sdx sign`. Exit 0 if valid, 1 if not.
    Verify {
        /// The signer's public key as JWK.
        #[arg(long)]
        key: PathBuf,
        /// The JWS (`-` for standard input).
        file: PathBuf,
        /// Print the verified document on standard output.
        #[arg(long)]
        print: bool,
    },
    /// Encrypt a file to a recipient: JWE (compact, RSA-OAEP-256 + A256GCM) on standard output.
    Encrypt {
        /// The recipient's public key as JWK (RSA-OAEP-256).
        #[arg(long)]
        to: PathBuf,
        /// The file (`-` for standard input).
        file: PathBuf,
    },
    /// Decrypt a JWE; the document goes to standard output. Exit 1 if it cannot be decrypted.
    Decrypt {
        /// PKCS#8 PEM private RSA key.
        #[arg(long)]
        key: PathBuf,
        /// The JWE (`-` for standard input).
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConnectorCommand {
    /// Check the mapping of a connector file against the live ticket system (do its statuses, queues, types
    /// and fields exist?) before anything is sent. Exit 0 if it fits, 1 if not.
    Check {
        /// The connector file (TOML, see docs/connectors.md).
        #[arg(long)]
        config: PathBuf,
    },
    /// Run one connector alone against the node named in its file's [node], until Ctrl-C or SIGTERM.
    Run {
        /// The connector file (TOML, see docs/connectors.md).
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// End-to-end propagation between two real ticket systems through two nodes and two connectors: public
    /// comments written one at a time in each system until the other shows them (p50/p95 per direction).
    Connectors {
        /// MILA:BELA of otobo, rt, redmine.
        #[arg(long, default_value = "otobo:redmine", value_name = "MILA:BELA")]
        ticket_systems: String,
        /// Comments per direction.
        #[arg(long, default_value_t = 100)]
        changes: usize,
        /// The connectors' polling interval of the ticket systems, in ms.
        #[arg(long, default_value_t = 1000)]
        poll_ms: u64,
        /// Then hand this many new tickets over at once and time until all arrived (0: skip).
        #[arg(long, default_value_t = 50)]
        tickets: usize,
        /// Take the pushes of the systems that can push (OTOBO's invoker, RT's scrip; see docs/connectors.md).
        #[arg(long)]
        push: bool,
    },
    /// The hub's cost: forward N cases MiLa → BeLa bilateral, through a hub (end-to-end encrypted), and through a
    /// hub running as a process of its own (its CPU time per message and what it alone could route); cases/s,
    /// p50/p99 and the p50 the hub adds. With --json the last line is one JSON object.
    Hub {
        /// How many cases per topology.
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// How many in flight at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// End with one JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Forward N cases between two nodes on loopback and wait for every signed receipt; compare with a no-op
    /// mTLS POST on the same stack. With --json the last line is one JSON object.
    Forward {
        /// How many cases.
        #[arg(long, default_value_t = 2000)]
        count: usize,
        /// How many in flight at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// End with one JSON line (tickets_per_s, p50_ms, p99_ms, baseline_per_s, …).
        #[arg(long)]
        json: bool,
        /// Start this many cases per second whatever the answers (open loop) instead of keeping C in flight.
        #[arg(long)]
        rate: Option<f64>,
        /// First store this many delivered cases on both nodes (lookups and rate with a full database).
        #[arg(long, default_value_t = 0)]
        preload: usize,
        /// Run both nodes on this PostgreSQL server (postgres://…), each in a schema of its own.
        #[arg(long)]
        database_url: Option<String>,
        /// Measure running nodes instead: the forwarding node's local API base URL (…/api/v1).
        #[arg(long, requires_all = ["token_file", "peer", "tls_cert", "tls_key", "ca"])]
        api: Option<String>,
        /// With --api: file holding the API's bearer token.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// With --api: the receiving node's peer endpoint (https://…), for the no-op baseline.
        #[arg(long)]
        peer: Option<String>,
        /// With --api: a federation client certificate (PEM) for the baseline.
        #[arg(long)]
        tls_cert: Option<PathBuf>,
        /// With --api: its private key (PEM).
        #[arg(long)]
        tls_key: Option<PathBuf>,
        /// With --api: the federation CA certificate (PEM).
        #[arg(long)]
        ca: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Make a federation CA: DIR/ca.crt.pem (give it to every node) and DIR/ca.key.pem (mode 0600).
    Init {
        /// Output directory (created if missing); existing CA files are never overwritten.
        #[arg(long)]
        out: PathBuf,
        /// The CA's name (subject CN).
        #[arg(long, default_value = "SDX federation CA")]
        name: String,
    },
    /// Issue a node's TLS certificate: DIR/node.crt.pem and DIR/node.key.pem (mode 0600), for organisation KEY
    /// (SAN URI urn:sdx:org:KEY) and exactly the given DNS names and IP addresses. With --csr, sign that request
    /// instead (only DIR/node.crt.pem is written; exit 1 if the request is not acceptable).
    Issue {
        /// The CA directory (from `sdx pki init`).
        #[arg(long)]
        ca: PathBuf,
        /// The node's organisation key, e.g. psw:01000115.
        #[arg(long)]
        org: sdx_model::OrgKey,
        /// DNS name the peers reach the node by (repeat for more).
        #[arg(long = "host", value_name = "NAME", required = true)]
        host: Vec<String>,
        /// IP address the peers reach the node by (repeat for more).
        #[arg(long = "ip", value_name = "ADDR")]
        ip: Vec<std::net::IpAddr>,
        /// Sign this certificate request (PEM, from `sdx init` or `sdx pki request`) instead of making a key.
        #[arg(long, value_name = "FILE")]
        csr: Option<PathBuf>,
        /// Output directory (created if missing); existing files are never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Make a new TLS key and a certificate request for the federation CA: DIR/node.key.pem (mode 0600) and
    /// DIR/node.csr.pem.
    Request {
        /// The node's organisation key.
        #[arg(long)]
        org: sdx_model::OrgKey,
        /// DNS name to ask for (repeat for more; the CA decides).
        #[arg(long = "host", value_name = "NAME")]
        host: Vec<String>,
        /// IP address to ask for (repeat for more).
        #[arg(long = "ip", value_name = "ADDR")]
        ip: Vec<std::net::IpAddr>,
        /// Output directory (created if missing); existing files are never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Show what certificates say (PEM; every certificate in each file): subject, organisation, DNS names and IP
    /// addresses, validity and days left, SHA-256 fingerprint. Nothing is verified. Exit 0 if all are valid now,
    /// 1 if any has expired or is not valid yet.
    Show {
        /// Certificate files (PEM).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate a key pair: DIR/private.pem (PKCS#8, mode 0600) and DIR/public.jwk.
    Generate {
        /// ES256 (P-256), PS512 (RSA 4096) or RSA-OAEP-256 (RSA 4096).
        #[arg(long)]
        alg: String,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Overwrite an existing private.pem.
        #[arg(long)]
        force: bool,
    },
    /// Show a public key (JWK) or each key of a JWK set: algorithm, kid and the RFC 7638 thumbprint computed from
    /// the key itself — what to compare with the owner over a second channel. Exit 1 if a kid is not its key's
    /// thumbprint (a node refuses such a peer key).
    Show {
        /// The public key file (JWK or JWK set).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Join public keys (JWKs or JWK sets) into one JWK set, each key once, on standard output: a peer's file
    /// with its old and its new signing key during a rollover.
    Join {
        /// The key files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

/// Target format of `convert`.
#[derive(Clone, Copy, ValueEnum)]
enum Target {
    /// JSON binding.
    Json,
    /// XML binding.
    Xml,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { files, json } => cmd::document::validate(&files, json),
        Command::Convert { to, file } => cmd::document::convert(&file, matches!(to, Target::Xml)),
        Command::Schema { out } => cmd::schema::write(&out),
        Command::Serve { config } => cmd::serve::serve(&config),
        Command::Connector { command: ConnectorCommand::Check { config } } => cmd::connector::check(&config),
        Command::Connector { command: ConnectorCommand::Run { config } } => cmd::connector::run(&config),
        Command::Pki { command: PkiCommand::Init { out, name } } => cmd::pki::init(&out, &name),
        Command::Pki { command: PkiCommand::Issue { ca, org, host, ip, csr, out } } => {
            cmd::pki::issue(cmd::pki::IssueOptions { ca, org, hosts: host, ips: ip, csr, out })
        }
        Command::Pki { command: PkiCommand::Request { org, host, ip, out } } => {
            cmd::pki::request(&org, &host, &ip, &out)
        }
        Command::Pki { command: PkiCommand::Show { files } } => cmd::pki::show(&files),
        Command::Init { org, out, name, ca, host, ip, listen, api_listen } => {
            cmd::init::init(cmd::init::InitOptions { org, out, name, ca, hosts: host, ips: ip, listen, api_listen })
        }
        Command::Bench {
            command:
                BenchCommand::Forward {
                    count,
                    concurrency,
                    json,
                    rate,
                    preload,
                    database_url,
                    api,
                    token_file,
                    peer,
                    tls_cert,
                    tls_key,
                    ca,
                },
        } => {
            let target = match (api, token_file, peer, tls_cert, tls_key, ca) {
                (Some(api), Some(token_file), Some(peer), Some(tls_cert), Some(tls_key), Some(ca)) => {
                    Some(cmd::bench::Target { api, token_file, peer, tls_cert, tls_key, ca })
                }
                _ => None,
            };
            let opts = cmd::bench::ForwardOptions { count, concurrency, json, rate, preload, database_url, target };
            cmd::bench::forward(opts)
        }
        Command::Bench { command: BenchCommand::Hub { count, concurrency, json } } => {
            cmd::demo_topology::bench_hub(count, concurrency, json)
        }
        Command::Bench { command: BenchCommand::Connectors { ticket_systems, changes, poll_ms, tickets, push } } => {
            cmd::demo_systems::bench(&ticket_systems, changes, poll_ms, tickets, push)
        }
        Command::Openapi => {
            let doc = serde_json::to_string_pretty(&sdx_node::openapi::document()).unwrap_or_default();
            sdx_cli::io::stdout(format!("{doc}\n").as_bytes()).map(|()| Outcome::Valid)
        }
        Command::Directory { command } => cmd::directory::run(command),
        Command::Demo { data_dir, database_url, topology: Some(t), .. } => {
            cmd::demo_topology::demo(&t, data_dir, database_url)
        }
        Command::Demo { data_dir, database_url: _, ticket_systems: Some(pair), .. } => {
            cmd::demo_systems::demo(&pair, data_dir)
        }
        Command::Demo { data_dir, database_url, ticket_systems: None, topology: None } => {
            cmd::demo::demo(cmd::demo::DemoOptions { data_dir, database_url })
        }
        Command::Keys { command: KeysCommand::Generate { alg, out, force } } => cmd::jose::generate(&alg, &out, force),
        Command::Keys { command: KeysCommand::Show { file } } => cmd::jose::show(&file),
        Command::Keys { command: KeysCommand::Join { files } } => cmd::jose::join(&files),
        Command::Sign { key, file } => cmd::jose::sign(&key, &file),
        Command::Verify { key, file, print } => cmd::jose::verify(&key, &file, print),
        Command::Encrypt { to, file } => cmd::jose::encrypt(&to, &file),
        Command::Decrypt { key, file } => cmd::jose::decrypt(&key, &file),
    };
    match result {
        Ok(Outcome::Valid) => ExitCode::SUCCESS,
        Ok(Outcome::Invalid) => ExitCode::from(1),
        Err(e) => {
            eprintln!("sdx: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
