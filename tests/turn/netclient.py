"""An async TURN test client over real loopback sockets (UDP, TCP or TLS), built on the codec."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from turn.server.auth import mint_rest_credentials
from turn.stun import (
    TRANSPORT_UDP,
    Attribute,
    ChannelNumber,
    Data,
    Lifetime,
    MessageClass,
    Method,
    Nonce,
    Realm,
    RequestedTransport,
    Software,
    StreamReassembler,
    StunFrame,
    StunMessage,
    Username,
    XorPeerAddress,
    XorRelayedAddress,
    long_term_key,
    parse_message,
)

SECRET = "s3cret"
REGION = "eu-west"


def self_signed(tmp: Path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "regio-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


class NetClient:
    """One five-tuple's worth of TURN client."""

    def __init__(self, protocol: str, server: tuple[str, int], *, participant: str = "alice",
                 region: str = REGION, secret: str = SECRET, wall: float | None = None) -> None:
        import time

        self.protocol = protocol
        self.server = server
        self.username, self.password = mint_rest_credentials(
            secret, region, participant, 3600, time.time() if wall is None else wall)
        self.realm = "regio"
        self.nonce = ""
        self.sock: trio.socket.SocketType | None = None
        self.stream: trio.abc.Stream | None = None
        self.reassembler = StreamReassembler(max_frame_size=70000)
        self.data_in: list[bytes] = []
        self.relayed: tuple[str, int] | None = None

    async def connect(self) -> None:
        if self.protocol == "udp":
            self.sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            await self.sock.bind(("127.0.0.1", 0))
            await self.sock.connect(self.server)
            return
        tcp = await trio.open_tcp_stream(*self.server)
        if self.protocol == "tls":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.stream = trio.SSLStream(tcp, ctx, server_hostname="127.0.0.1")
            await self.stream.do_handshake()
        else:
            self.stream = tcp

    async def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        if self.stream is not None:
            await trio.aclose_forcefully(self.stream)

    async def send_raw(self, data: bytes) -> None:
        if self.sock is not None:
            await self.sock.send(data)
        else:
            assert self.stream is not None
            await self.stream.send_all(data + b"\x00" * (-len(data) & 3))

    async def recv_frame(self) -> bytes:
        if self.sock is not None:
            return await self.sock.recv(65536)
        assert self.stream is not None
        while True:
            frame = self.reassembler.next_frame()
            if frame is not None:
                if isinstance(frame, StunFrame):
                    return frame.data
                return frame.channel.to_bytes(2, "big") + len(frame.data).to_bytes(2, "big") \
                    + frame.data
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                raise EOFError("server closed the connection")
            self.reassembler.receive_data(chunk)

    async def response(self) -> StunMessage:
        with trio.fail_after(5):
            while True:
                data = await self.recv_frame()
                if data[0] < 0x40:
                    msg = parse_message(data)
                    if msg.cls in (MessageClass.SUCCESS, MessageClass.ERROR):
                        return msg
                    self.data_in.append(data)
                else:
                    self.data_in.append(data)

    async def request(self, method: int, *attrs: Attribute) -> StunMessage:
        if not self.nonce:
            first = StunMessage(method, MessageClass.REQUEST, os.urandom(12),
                                (*attrs, Software("regio-test-client-0001")))
            await self.send_raw(first.encode(fingerprint=True))
            challenge = await self.response()
            nonce = challenge.get(Nonce)
            assert nonce is not None, challenge
            self.nonce = nonce.value
        key = long_term_key(self.username, self.realm, self.password)
        msg = StunMessage(method, MessageClass.REQUEST, os.urandom(12),
                          (*attrs, Username(self.username), Realm(self.realm), Nonce(self.nonce)))
        await self.send_raw(msg.encode(integrity_key=key, fingerprint=True))
        return await self.response()

    async def allocate(self, lifetime: int = 600) -> StunMessage:
        response = await self.request(Method.ALLOCATE, RequestedTransport(TRANSPORT_UDP),
                                      Lifetime(lifetime))
        relayed = response.get(XorRelayedAddress)
        if relayed is not None:
            self.relayed = (str(relayed.address), relayed.port)
        return response

    async def permission(self, ip: str, port: int = 1) -> StunMessage:
        return await self.request(Method.CREATE_PERMISSION,
                                  XorPeerAddress(ipaddress.ip_address(ip), port))

    async def bind(self, number: int, ip: str, port: int) -> StunMessage:
        return await self.request(Method.CHANNEL_BIND, ChannelNumber(number),
                                  XorPeerAddress(ipaddress.ip_address(ip), port))

    async def send_indication(self, ip: str, port: int, payload: bytes) -> None:
        msg = StunMessage(Method.SEND, MessageClass.INDICATION, os.urandom(12),
                          (XorPeerAddress(ipaddress.ip_address(ip), port), Data(payload)))
        await self.send_raw(msg.encode())

    async def channel_data(self, number: int, payload: bytes) -> None:
        await self.send_raw(number.to_bytes(2, "big") + len(payload).to_bytes(2, "big") + payload)

    async def next_data(self) -> bytes:
        """The next ChannelData or Data indication received (raw bytes)."""
        with trio.fail_after(5):
            while not self.data_in:
                data = await self.recv_frame()
                self.data_in.append(data)
            return self.data_in.pop(0)
