"""Every command the spec names has an entry in the table.

The names below are the spec's own text (v1.1.1.7): its command list (section 3,
"AT Command list"), section 4 "Command History" and the contents' 3.x.y titles,
misspellings included. When the spec file is at hand (../shared/spec), the test
also checks these excerpts against it.
"""
import re
from pathlib import Path

import pytest

from wizsock import protocol as p

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "wizfi360-at-instruction-set-v1.1.1.7.txt"
NAME = r"(?<![A-Za-z])(AT(?:\+[A-Z_0-9]+|E)?|\+IPD)\b"

COMMAND_LIST = (
    '+IPD', 'AT', 'AT+AWSCON', 'AT+AWSPKSEND', 'AT+AZCON', 'AT+AZSET', 'AT+CASEND', 'AT+CIFSR',
    'AT+CIPAPMAC_CUR', 'AT+CIPAPMAC_DEF', 'AT+CIPAP_CUR', 'AT+CIPAP_DEF', 'AT+CIPBUFRESET', 'AT+CIPBUFSTATUS',
    'AT+CIPCHECKSEQ', 'AT+CIPCLOSE', 'AT+CIPDINFO', 'AT+CIPDNS_CUR', 'AT+CIPDNS_DEF', 'AT+CIPDOMAIN',
    'AT+CIPMODE', 'AT+CIPMUX', 'AT+CIPSEND', 'AT+CIPSENDBUF', 'AT+CIPSENDEX', 'AT+CIPSERVER',
    'AT+CIPSERVERMAXCONN', 'AT+CIPSNTPCFG', 'AT+CIPSNTPIME', 'AT+CIPSSLSIZE', 'AT+CIPSTAMAC_CUR',
    'AT+CIPSTAMAC_DEF', 'AT+CIPSTART', 'AT+CIPSTATUS', 'AT+CIPSTA_CUR', 'AT+CIPSTA_DEF', 'AT+CIPSTO',
    'AT+CIUPDATE', 'AT+CLICASEND', 'AT+CWAUTOCONN', 'AT+CWCOUNTRY_CUR', 'AT+CWCOUNTRY_DEF', 'AT+CWDHCP_CUR',
    'AT+CWDHCP_DEF', 'AT+CWDHPCS_DEF', 'AT+CWHOOSTNAME', 'AT+CWJAP_CUR', 'AT+CWJAP_DEF', 'AT+CWLAP',
    'AT+CWLAPOPT', 'AT+CWLIF', 'AT+CWMODE_CUR', 'AT+CWMODE_DEF', 'AT+CWQAP', 'AT+CWSAP_CUR', 'AT+CWSAP_DEF',
    'AT+CWSTARTSMART', 'AT+CWSTOPSMART', 'AT+GMR', 'AT+GSLP', 'AT+MQTTCON', 'AT+MQTTDIS', 'AT+MQTTPUB',
    'AT+MQTTSET', 'AT+MQTTTOPIC', 'AT+PING', 'AT+RESTORE', 'AT+RST', 'AT+SAVETRANSLINK', 'AT+SLEEP',
    'AT+SSLCCONF', 'AT+SYSGPIODIR', 'AT+SYSGPIOREAD', 'AT+SYSGPIOWRITE', 'AT+SYSIOGETCFG', 'AT+SYSIOSETCFG',
    'AT+UART_CUR', 'AT+UART_DEF', 'AT+WIZ_NETCONFIG', 'AT+WPS', 'ATE',
)
COMMAND_HISTORY = (
    '+IPD', 'AT', 'AT+AWSCON', 'AT+AWSPKSEND', 'AT+AZCON', 'AT+AZSET', 'AT+CASEND', 'AT+CIFSR',
    'AT+CIPAPMAC_CUR', 'AT+CIPAPMAC_DEF', 'AT+CIPAP_CUR', 'AT+CIPAP_DEF', 'AT+CIPBUFRESET', 'AT+CIPBUFSTATUS',
    'AT+CIPCHECKSEQ', 'AT+CIPCLOSE', 'AT+CIPDINFO', 'AT+CIPDNS_CUR', 'AT+CIPDNS_DEF', 'AT+CIPDOMAIN',
    'AT+CIPMODE', 'AT+CIPMUX', 'AT+CIPSEND', 'AT+CIPSENDERBUF', 'AT+CIPSENDEX', 'AT+CIPSERVER',
    'AT+CIPSERVERMAXCONN', 'AT+CIPSNTPCFG', 'AT+CIPSNTPTIME', 'AT+CIPSSLCCONF', 'AT+CIPSSLSIZE',
    'AT+CIPSTAMAC_CUR', 'AT+CIPSTAMAC_DEF', 'AT+CIPSTART', 'AT+CIPSTATUS', 'AT+CIPSTA_CUR', 'AT+CIPSTA_DEF',
    'AT+CIPSTO', 'AT+CIUPDATE', 'AT+CLICASEND', 'AT+CWAUTOCONN', 'AT+CWCOUNTRY_CUR', 'AT+CWCOUNTRY_DEF',
    'AT+CWDHCPS_CUR', 'AT+CWDHCPS_DEF', 'AT+CWDHCP_CUR', 'AT+CWDHCP_DEF', 'AT+CWHOSTNAME', 'AT+CWJAP_CUR',
    'AT+CWJAP_DEF', 'AT+CWLAP', 'AT+CWLAPOPT', 'AT+CWLIF', 'AT+CWMODE_CUR', 'AT+CWMODE_DEF', 'AT+CWQAP',
    'AT+CWSAP_CUR', 'AT+CWSAP_DEF', 'AT+CWSTARTSMART', 'AT+CWSTOPSMART', 'AT+GMR', 'AT+GSLP', 'AT+MQTTCON',
    'AT+MQTTDIS', 'AT+MQTTPUB', 'AT+MQTTSET', 'AT+MQTTTOPIC', 'AT+PING', 'AT+RESTORE', 'AT+RST',
    'AT+SAVETRANSLINK', 'AT+SLEEP', 'AT+SYSGPIODIR', 'AT+SYSGPIOREAD', 'AT+SYSGPIOWRITE', 'AT+SYSIOGETCFG',
    'AT+SYSIOSETCFG', 'AT+UART_CUR', 'AT+UART_DEF', 'AT+WIZ_NETCONFIG', 'AT+WPS', 'ATE',
)
CONTENTS = (
    ('3.1.1', 'AT'), ('3.1.2', 'AT+RST'), ('3.1.3', 'AT+GMR'), ('3.1.4', 'AT+GSLP'), ('3.1.5', 'ATE'),
    ('3.1.6', 'AT+RESTORE'), ('3.1.7', 'AT+UART_CUR'), ('3.1.8', 'AT+UART_DEF'), ('3.1.9', 'AT+SLEEP'),
    ('3.1.10', 'AT+SYSIOSETCFG'), ('3.1.11', 'AT+SYSIOGETCFG'), ('3.1.12', 'AT+SYSGPIODIR'),
    ('3.1.13', 'AT+SYSGPIOWRITE'), ('3.1.14', 'AT+SYSGPIOREAD'), ('3.2.1', 'AT+CWMODE_CUR'),
    ('3.2.2', 'AT+CWMODE_DEF'), ('3.2.3', 'AT+CWJAP_CUR'), ('3.2.4', 'AT+CWJAP_DEF'),
    ('3.2.5', 'AT+CWLAPOPT'), ('3.2.6', 'AT+CWLAP'), ('3.2.7', 'AT+CWQAP'), ('3.2.8', 'AT+CWSAP_CUR'),
    ('3.2.9', 'AT+CWSAP_DEF'), ('3.2.10', 'AT+CWLIF'), ('3.2.11', 'AT+CWDHCP_CUR'),
    ('3.2.12', 'AT+CWDHCP_DEF'), ('3.2.13', 'AT+CWDHCPS_CUR'), ('3.2.14', 'AT+CWDHCPS_DEF'),
    ('3.2.15', 'AT+CWAUTOCONN'), ('3.2.16', 'AT+CIPSTAMAC_CUR'), ('3.2.17', 'AT+CIPSTAMAC_DEF'),
    ('3.2.18', 'AT+CIPAPMAC_CUR'), ('3.2.19', 'AT+CIPAPMAC_DEF'), ('3.2.20', 'AT+CIPSTA_CUR'),
    ('3.2.21', 'AT+CIPSTA_DEF'), ('3.2.22', 'AT+CIPAP_CUR'), ('3.2.23', 'AT+CIPAP_DEF'),
    ('3.2.24', 'AT+CWSTARTSMART'), ('3.2.25', 'AT+CWSTOPSMART'), ('3.2.26', 'AT+WPS'),
    ('3.2.27', 'AT+CWHOOSTNAME'), ('3.2.28', 'AT+CWCOUNTRY_CUR'), ('3.2.29', 'AT+CWCOUNTRY_DEF'),
    ('3.2.30', 'AT+WIZ_NETCONFIG'), ('3.3.1', 'AT+CIPSTATUS'), ('3.3.2', 'AT+CIPDOMAIN'),
    ('3.3.3', 'AT+CIPSTART'), ('3.3.4', 'AT+CIPSSLSIZE'), ('3.3.5', 'AT+CIPSSLCONF'), ('3.3.6', 'AT+CASEND'),
    ('3.3.7', 'AT+CIPSEND'), ('3.3.8', 'AT+CIPSENDEX'), ('3.3.9', 'AT+CIPSENDERBUF'),
    ('3.3.10', 'AT+CIPBUFRESET'), ('3.3.11', 'AT+CIPBUFSTATUS'), ('3.3.12', 'AT+CIPCHECKSEQ'),
    ('3.3.13', 'AT+CIPCLOSE'), ('3.3.14', 'AT+CIFSR'), ('3.3.15', 'AT+CIPMUX'), ('3.3.16', 'AT+CIPSERVER'),
    ('3.3.17', 'AT+CIPSERVERMAXCONN'), ('3.3.18', 'AT+CIPMODE'), ('3.3.19', 'AT+SAVETRANSLINK'),
    ('3.3.20', 'AT+CIPSTO'), ('3.3.21', 'AT+CIUPDATE'), ('3.3.22', 'AT+PING'), ('3.3.23', 'AT+CIPDINFO'),
    ('3.3.24', '+IPD'), ('3.3.25', 'AT+CIPSNTPCFG'), ('3.3.26', 'AT+CIPSNTPTIME'),
    ('3.3.27', 'AT+CIPDNS_CUR'), ('3.3.28', 'AT+CIPDNS_DEF'), ('3.3.29', 'AT+MQTTSET'),
    ('3.3.30', 'AT+MQTTTOPIC'), ('3.3.31', 'AT+MQTTCON'), ('3.3.32', 'AT+MQTTPUB'), ('3.3.33', 'AT+MQTTDIS'),
    ('3.3.34', 'AT+AZSET'), ('3.3.35', 'AT+AZCON'), ('3.3.36', 'AT+AWSPKSEND'), ('3.3.37', 'AT+CLICASEND'),
    ('3.3.38', 'AT+AWSCON'),
)


def table_name(spec_name):
    """The table key a name of the spec's text resolves to (None for +IPD: see format_ipd)."""
    if spec_name == "+IPD":
        return None
    if spec_name == "ATE":
        return "E0"            # ATE0 / ATE1
    name = "" if spec_name == "AT" else spec_name[3:]
    return p.DOC_TYPOS.get(name, name)


@pytest.mark.parametrize("name", sorted(set(COMMAND_LIST) | set(COMMAND_HISTORY)))
def test_every_named_command_has_an_entry(name):
    key = table_name(name)
    if key is None:
        assert p.format_ipd(0, b"x", mux=False) == b"+IPD,1:x"
        return
    spec = p.COMMANDS[key]
    assert spec.forms, name
    assert key in p.COMMANDS


@pytest.mark.parametrize("section,name", CONTENTS)
def test_every_section_is_described(section, name):
    key = table_name(name)
    if key is None:
        assert section == "3.3.24"
        return
    assert p.COMMANDS[key].section == section
    if name == "ATE":
        assert p.COMMANDS["E1"].section == section


def test_table_has_nothing_the_spec_does_not_name():
    keys = {table_name(n) for n in set(COMMAND_LIST) | set(COMMAND_HISTORY)} - {None}
    named = {p.COMMANDS[k].name for k in keys} | {"E1"}
    # plus the deprecated bare forms real firmware accepts (sources in commands.LEGACY)
    assert set(p.COMMANDS) == named | set(p.LEGACY)
    assert all(p.COMMANDS[n + "_DEF"].name in named for n in p.LEGACY)


def test_aliases_resolve_on_the_wire():
    assert p.COMMANDS["CWDHPCS_DEF"] is p.COMMANDS["CWDHCPS_DEF"]
    assert p.COMMANDS["CWDHPCS_CUR"] is p.COMMANDS["CWDHCPS_CUR"]
    assert p.COMMANDS["CIPSENDERBUF"] is p.COMMANDS["CIPSENDBUF"]
    assert p.parse_request(b"AT+CIPSENDERBUF=0,1024").name == "CIPSENDBUF"
    assert "CWHOOSTNAME" not in p.COMMANDS          # a typo of the contents, not a command
    with pytest.raises(p.UnknownCommand):
        p.parse_request(b"AT+CWHOOSTNAME?")


def test_excerpts_match_the_spec_file():
    if not SPEC.exists():
        # the excerpts above are the test's data; the file only re-checks them
        assert COMMAND_LIST and COMMAND_HISTORY and CONTENTS
        return
    lines = SPEC.read_text(encoding="utf-8").split("\n")
    start = lines.index("AT Command list")
    end = lines.index("3.1 System Control Commands")
    hist = lines.index("4 Command History")
    assert tuple(sorted(set(re.findall(NAME, "\n".join(lines[start:end]))))) == COMMAND_LIST
    assert tuple(sorted(set(re.findall(NAME, "\n".join(lines[hist:lines.index("Copyright Notice")]))))) \
        == COMMAND_HISTORY
    toc = "\n".join(lines[:start])
    found = [(a, b.rstrip(":")) for a, b in re.findall(r"^(3\.\d+\.\d+)\s+(AT\S*|ATE|\+IPD)", toc, re.M)]
    assert tuple(found) == CONTENTS


# 4 Command History, row by row (the first row lists every 1.0.1.0 command).
HISTORY_ROWS = {
    (1, 0, 2, 4): "AT+MQTTSET, AT+MQTTTOPIC, AT+MQTTCON, AT+MQTTPUB, AT+MQTTDIS",
    (1, 0, 4, 1): "AT+AZSET, AT+AZCON",
    (1, 0, 5, 1): "AT+CIPSSLCCONF, AT+CASEND",
    (1, 0, 7, 2): "AT+WIZ_NETCONFIG",
    (1, 1, 1, 2): "AT+AWSCON, AT+AWSPKSEND, AT+CLICASEND",
}


def test_command_history_versions():
    later = {}
    for version, row in HISTORY_ROWS.items():
        for name in re.findall(NAME, row):
            later[p.COMMANDS[table_name(name)].name] = version
    for name, spec in p.COMMANDS.items():
        assert spec.since == later.get(name, (1, 0, 1, 0)), name
    gmr = p.records.VersionInfo("1.0.5.1(Oct 16 2019)", "3.0.0", "Oct 16 2019")
    assert gmr.version == (1, 0, 5, 1)
    assert p.COMMANDS["CASEND"].available(gmr.version) and not p.COMMANDS["AWSCON"].available(gmr.version)
    assert p.COMMANDS["AWSCON"].available(None)
    assert p.records.VersionInfo("unknown", "", "").version is None
