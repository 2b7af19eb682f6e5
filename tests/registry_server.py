"""A real OCI registry for the tests: Debian's ``docker-registry`` (CNCF distribution 2.8),
installed by scripts/ensure-registry.sh (``make test``), started on a free localhost port with TLS
(a certificate made here) and htpasswd basic auth, its storage in a temporary folder. Never a mock.
"""
from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

USER, PASSWORD = "fleet", "s3cret-registry-pass"


def registry_binary() -> str | None:
    return shutil.which("docker-registry") or shutil.which("registry")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost / 127.0.0.1 (also its own CA, for --ca-file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "registry.crt", folder / "registry.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@dataclass
class RegistryServer:
    """A running registry: ``host`` (127.0.0.1:PORT), ``ca`` (its certificate), ``storage``."""

    folder: Path
    host: str = ""
    ca: Path = Path()
    storage: Path = Path()
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RegistryServer:
        binary = registry_binary()
        if binary is None:
            raise RuntimeError("docker-registry is not installed: run scripts/ensure-registry.sh (make test does)")
        import bcrypt
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.host:
            self.host = f"127.0.0.1:{_free_port()}"
            self.ca, key = _certificate(self.folder)
            self.storage = self.folder / "storage"
            (self.folder / "htpasswd").write_bytes(
                USER.encode() + b":" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)) + b"\n")
            (self.folder / "config.yml").write_text(
                "version: 0.1\nlog: {level: error}\n"
                f"storage: {{filesystem: {{rootdirectory: {self.storage}}}, delete: {{enabled: true}}}}\n"
                f"http: {{addr: '{self.host}', tls: {{certificate: {self.ca}, key: {key}}}}}\n"
                f"auth: {{htpasswd: {{realm: edgepack-test, path: {self.folder / 'htpasswd'}}}}}\n")
        log = (self.folder / "registry.log").open("ab")
        self.proc = subprocess.Popen([binary, "serve", str(self.folder / "config.yml")], stdout=log, stderr=log)
        context = ssl.create_default_context(cafile=str(self.ca))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"https://{self.host}/v2/", context=context, timeout=2)
            except urllib.error.HTTPError as exc:
                if exc.code == 401:  # up, and asking for credentials
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        raise RuntimeError(f"the registry did not start: {(self.folder / 'registry.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    def blob(self, digest: str) -> Path:
        """Where the registry keeps a blob on disk (to tamper with it)."""
        hexd = digest.removeprefix("sha256:")
        return self.storage / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexd[:2] / hexd / "data"
