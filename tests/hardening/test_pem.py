"""PEM uploads (AT+CASEND=1, AT+CLICASEND=1, AT+AWSPKSEND=1): one checked path
(issue 8, finding 1).

Whatever the text, the module gets exactly the `AT+<NAME>=1` line and one PEM
block of the label it stores, or nothing at all and the caller a PemError (a
ValueError) that never quotes the content.
"""
from __future__ import annotations

import pytest
import trustme

from wizsock import protocol as P
from wizsock import ssl as wssl

from hardening.helpers import CORES, request_key

CA = trustme.CA(key_type=trustme.KeyType.RSA)
LEAF = CA.issue_cert("device.wizsock.test", key_type=trustme.KeyType.RSA)
CERT = CA.cert_pem.bytes().decode()
CERT2 = trustme.CA().cert_pem.bytes().decode()
KEY = LEAF.private_key_pem.bytes().decode()              # -----BEGIN RSA PRIVATE KEY-----
EC_KEY = trustme.CA().private_key_pem.bytes().decode()   # -----BEGIN EC PRIVATE KEY-----
KEY_BODY = KEY.splitlines()[3]                            # a line of key material, to look for

UPLOADS = {  # API call name -> (command, a good PEM)
    "net.set_ca": ("CASEND", CERT),
    "aws.set_client_cert": ("CLICASEND", LEAF.cert_chain_pems[0].bytes().decode()),
    "aws.set_private_key": ("AWSPKSEND", KEY),
}


def _api(module, name):
    group, method = name.split(".")
    return getattr(getattr(module, group), method)


def hostile_pems(good: str):
    """A good PEM made hostile: text after END, lines inside, bundles, swapped kinds."""
    lines = good.strip().split("\n")
    out = []
    for core in CORES:
        out += [
            good + core,                                       # after the END line
            good.rstrip("\n") + core + "\n",                   # on the END line
            "\n".join(lines[:2] + [core] + lines[2:]),         # inside the block
            "\n".join(lines[:1] + [lines[1] + core] + lines[2:]),
            lines[0] + core + "\n" + "\n".join(lines[1:]),     # on the BEGIN line
        ]
    out += [
        good + "AT+CWQAP\r\n", good + "\r\nAT+RST\r\n", good + good, CERT + CERT2, KEY + CERT,
        CERT + KEY, good.replace("\n", "\r"), good.encode("utf-16").decode("latin-1"),
        good + "\x00" * 10, good[: len(good) // 2], "", "\n\n", "AT+RST\r\n",
        good.replace("-----END", "-----BEGIN", 1), good * 20, good + "-----END CERTIFICATE-----\n",
        good + "-----BEGIN CERTIFICATE-----\n", EC_KEY, CERT, KEY,
    ]
    return out


@pytest.mark.parametrize("name", sorted(UPLOADS))
def test_uploads_carry_one_block_or_nothing(module, wire, name):
    command, good = UPLOADS[name]
    upload = _api(module, name)
    query = {"CASEND": module.net.ca, "CLICASEND": module.aws.client_cert,
             "AWSPKSEND": module.aws.private_key}[command]
    label = P.PEM_LABELS[command]
    bad, sent = [], 0
    inputs = hostile_pems(good)
    for text in inputs:
        for value in (text, text.encode("latin-1", "replace")):
            mark = wire.mark()
            try:
                upload(value)
                ok = True
            except P.PemError as exc:
                ok = False
                assert KEY_BODY not in str(exc) and KEY_BODY not in repr(exc.args)
                assert exc.__cause__ is None and (exc.__context__ is None
                                                  or exc.__suppress_context__)
            got = [request_key(l) for l in wire.since(mark)]
            if ok:
                sent += 1
                stored = query()
                blocks = P.pem_blocks(text)
                if got != [(command, {"mode": 1})] or len(blocks) != 1 or blocks[0][0] != label \
                        or stored is None or stored.text.strip().split("\n") != blocks[0][1]:
                    bad.append((text[-40:], got))
            elif got:
                bad.append((text[-40:], f"refused, yet on the wire: {got}"))
    assert not bad, bad[:3]
    assert sent >= 1     # the good text (and its harmless variants) went through
    print(f"\n{name}: {2 * len(inputs)} hostile PEM inputs, {sent} taken as one block, "
          f"0 smuggled")


def test_refusals_name_the_problem(module):
    with pytest.raises(P.PemError, match=r"one CA certificate .*holds 2 blocks"):
        module.net.set_ca(CERT + CERT2)
    with pytest.raises(P.PemError, match="private key .*never go to a certificate slot"):
        module.net.set_ca(KEY)
    with pytest.raises(P.PemError, match="private key .*never go to a certificate slot"):
        module.aws.set_client_cert(KEY)
    with pytest.raises(P.PemError, match=r"takes a private key .*not CERTIFICATE"):
        module.aws.set_private_key(CERT)
    with pytest.raises(P.PemError, match="PKCS#1 .*openssl rsa"):
        module.aws.set_private_key(EC_KEY)
    with pytest.raises(P.PemError, match="text after -----END CERTIFICATE-----"):
        module.net.set_ca(CERT + "AT+CWQAP\r\n")
    with pytest.raises(P.PemError, match="byte 0 is not"):
        module.net.set_ca(CA.cert_pem.bytes().replace(b"-----", b"\xff----", 1))
    with pytest.raises(P.PemError, match="longer than"):
        module.net.set_ca(CERT * 20)
    # a non-ASCII key: no UnicodeDecodeError whose args would hold the whole key
    with pytest.raises(P.PemError) as ei:
        module.aws.set_private_key(KEY.replace(KEY_BODY, KEY_BODY[:-1] + "é").encode())
    assert KEY_BODY[:20] not in repr(ei.value)
    assert ei.value.__context__ is None or ei.value.__suppress_context__


def test_explanatory_text_before_the_block_is_not_sent(module, emu):
    text = "subject=CN=wizsock test CA\nissuer=CN=wizsock test CA\n" + CERT
    module.net.set_ca(text)
    assert module.net.ca().text.strip() == CERT.strip()
    assert b"subject=" not in b"".join(d for k, d in emu.transcript if k == "<<")


def test_module_ssl_context_checks_at_construction(tmp_path, wire):
    mark = wire.mark()
    with pytest.raises(P.PemError, match="one CA certificate"):
        wssl.ModuleSSLContext(cadata=CERT + CERT2)
    with pytest.raises(P.PemError, match="never go to a certificate slot"):
        wssl.ModuleSSLContext(cadata=KEY)
    with pytest.raises(P.PemError, match="text after"):
        wssl.ModuleSSLContext(cadata=CERT + "\r\nAT+RST\r\n")
    with pytest.raises(P.PemError):
        wssl.ModuleSSLContext(cadata=CERT.replace("A", "é", 1))      # no UnicodeEncodeError
    big = tmp_path / "big.pem"
    big.write_bytes(b"A" * (P.PEM_MAX * 4))
    with pytest.raises(P.PemError, match="longer than"):
        wssl.ModuleSSLContext(cafile=str(big))
    # the stdlib's combined certfile (key and certificate in one file) is split
    both = tmp_path / "both.pem"
    both.write_text(KEY + UPLOADS["aws.set_client_cert"][1])
    ctx = wssl.ModuleSSLContext(cadata=CERT, certfile=str(both))
    assert b"RSA PRIVATE KEY" in ctx.key_pem and b"PRIVATE" not in ctx.cert_pem
    assert KEY_BODY not in repr(ctx)
    assert wire.since(mark) == []        # nothing of this reached the module


def test_good_uploads_still_work_after_the_refusals(module):
    """After every refusal above the module takes each good PEM and stores it as sent."""
    for name, (command, good) in sorted(UPLOADS.items()):
        _api(module, name)(good)
    assert module.net.ca().text.split("\n") == CERT.strip().split("\n")
    assert module.aws.private_key().text.split("\n") == KEY.strip().split("\n")
