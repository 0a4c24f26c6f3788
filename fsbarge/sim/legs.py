"""Channel variables and caller profiles of the two kinds of sofia legs in the captures.

Inbound: a registered phone's INVITE (sofia/internal/<ext>@127.0.0.1), authenticated by digest or
admitted by IP ACL. Outbound: the B-leg of 'bridge user/<ext>' to a phone registered with contact
user 'gw+<ext>' (sofia/internal/gw+<ext>@127.0.0.1:5070). Values follow the captures.
"""

from __future__ import annotations

from .model import DOMAIN, Channel, Profile, User, new_uuid

USER_AGENT = "FreeSWITCH-mod_sofia/1.11.1-release~64bit"


def sdp(port: int, direction: str | None = None) -> str:
    """A PCMU SDP like the phones'; its CRLFs travel as %0D%0A in plain events."""
    lines = ["v=0", "o=FreeSWITCH 1795321662 1795321663 IN IP4 127.0.0.1", "s=FreeSWITCH", "c=IN IP4 127.0.0.1",
             "t=0 0", f"m=audio {port} RTP/AVP 0 101 13", "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000",
             "a=fmtp:101 0-15", "a=rtpmap:13 CN/8000", "a=ptime:20"]
    if direction:
        lines.append(f"a={direction}")
    return "\r\n".join(lines) + "\r\n"


def inbound_leg(ext: str, dest: str, uuid: str, user: User | None, authenticated: bool,
                caller_id_name: str | None, now: float, session_id: str,
                request_params: list[tuple[str, str]], trunk: bool = False) -> Channel:
    """The PBX leg of a phone's INVITE, as sofia_handle_sip_i_invite leaves it before CS_INIT.

    ``trunk``: an INVITE from the carrier on the unauthenticated 'external' profile (as captured in
    tests/fixtures/realfs-captures/trunk-did-to-agent): ``ext`` is the caller's number, no
    presence_id, no user_name, no ACL, context 'public'.
    """
    us = int(now * 1_000_000)
    name = f"sofia/{'external' if trunk else 'internal'}/{ext}@{DOMAIN}"
    # The From display name is whatever the phone sends (caller-controlled, may be hostile).
    cid_name = caller_id_name if caller_id_name is not None else (user.name if user else ext)
    profile = Profile("inbound", ext, cid_name, ext, dest, uuid, name, us, context="public" if trunk else "default")
    ch = Channel(uuid, name, "inbound", profile, ext, now, call_uuid=uuid)
    ch.presence_id = None if trunk else f"{ext}@{DOMAIN}"
    ch.initial = {"cid_name": cid_name, "cid_num": ext, "ip_addr": DOMAIN, "dest": dest}
    tag = new_uuid()[:13]
    v = ch.variables
    v.update({
        "direction": "inbound", "uuid": uuid, "call_uuid": uuid, "session_id": session_id,
        "sip_from_user": ext, "sip_from_uri": f"{ext}@{DOMAIN}", "sip_from_host": DOMAIN,
        "video_media_flow": "disabled", "text_media_flow": "disabled", "channel_name": name,
        "sip_call_id": new_uuid(), "sip_local_network_addr": DOMAIN, "sip_network_ip": DOMAIN,
        "sip_network_port": "5070", "sip_invite_stamp": str(us), "sip_received_ip": DOMAIN,
        "sip_received_port": "5070", "sip_via_protocol": "udp", "sip_authorized": "true",
    })
    if trunk:
        # the external profile neither challenges nor applies an ACL (capture cross-node-agent-node)
        del v["sip_authorized"]
    elif authenticated and user is not None:
        # Digest-authenticated INVITE: the REQUEST_PARAMS of the directory lookup leak into the
        # channel as variable_Event-Name etc. (a parser must not mistake them for the real ones),
        # then sofia_reg_parse_auth copies the directory user in.
        v["Event-Name"] = "REQUEST_PARAMS"
        v.update({k: val for k, val in request_params if k != "Event-Sequence"})
        v.update({
            "Event-Calling-File": "sofia.c", "Event-Calling-Function": "sofia_handle_sip_i_invite",
            "Event-Calling-Line-Number": "10735", "Event-Sequence": str(us % 100000),
        })
        v.update({
            "sip_number_alias": ext, "sip_auth_username": ext, "sip_auth_realm": DOMAIN,
            "number_alias": ext, "requested_user_name": ext, "requested_domain_name": DOMAIN,
            "record_stereo": "true", "user_context": "default",
            "effective_caller_id_name": user.effective_name, "effective_caller_id_number": ext,
            "callgroup": user.callgroup, "user_name": ext, "domain_name": DOMAIN,
        })
    else:
        # Admitted by apply-inbound-acl: authorized, but no user_name (nobody was challenged).
        v["sip_acl_authed_by"] = "domains"
    v.update({
        "sip_from_user_stripped": ext, "sip_from_tag": tag, "sofia_profile_name": "external" if trunk else "internal",
        "sofia_profile_url": f"sip:mod_sofia@{DOMAIN}:5060", "recovery_profile_name": "internal",
        "sip_full_via": f"SIP/2.0/UDP {DOMAIN}:5070;rport=5070;branch=z9hG4bK{tag}",
        "sip_from_display": cid_name, "sip_full_from": f'"{cid_name}" <sip:{ext}@{DOMAIN}>;tag={tag}',
        "sip_full_to": f"<sip:{dest}@{DOMAIN}:5060>",
        "sip_allow": "INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, INFO, UPDATE, REGISTER, REFER, NOTIFY",
        "sip_req_user": dest, "sip_req_port": "5060", "sip_req_uri": f"{dest}@{DOMAIN}:5060",
        "sip_req_host": DOMAIN, "sip_to_user": dest, "sip_to_port": "5060",
        "sip_to_uri": f"{dest}@{DOMAIN}:5060", "sip_to_host": DOMAIN,
        "sip_contact_params": f"transport=udp;gw={ext}", "sip_contact_user": f"gw+{ext}",
        "sip_contact_port": "5070", "sip_contact_uri": f"gw+{ext}@{DOMAIN}:5070",
        "sip_contact_host": DOMAIN, "sip_user_agent": USER_AGENT,
        "sip_via_host": DOMAIN, "sip_via_port": "5070", "sip_via_rport": "5070", "max_forwards": "70",
        "presence_id": ch.presence_id, "switch_r_sdp": sdp(20140),
        "ep_codec_string": "CORE_PCM_MODULE.PCMU@8000h@20i@64000b,CORE_PCM_MODULE.PCMA@8000h@20i@64000b",
        "rtp_use_codec_string": "PCMU,PCMA", "remote_video_media_flow": "inactive",
        "remote_text_media_flow": "inactive", "remote_audio_media_flow": "sendrecv",
        "audio_media_flow": "sendrecv", "remote_media_ip": DOMAIN, "remote_media_port": "20140",
        "rtp_audio_recv_pt": "0", "rtp_use_codec_name": "PCMU", "rtp_use_codec_rate": "8000",
        "rtp_use_codec_ptime": "20", "rtp_use_codec_channels": "1",
        "rtp_last_audio_codec_string": "PCMU@8000h@20i@1c", "read_codec": "PCMU",
        "original_read_codec": "PCMU", "read_rate": "8000", "original_read_rate": "8000",
        "write_codec": "PCMU", "write_rate": "8000", "dtmf_type": "rfc2833",
        "endpoint_disposition": "RECEIVED",
    })
    if trunk:
        del v["presence_id"]
    return ch


def outbound_leg(a: Channel, user: User, uuid: str, now: float, session_id: str) -> Channel:
    """The agent's leg created by 'bridge user/<ext>' from the A-leg ``a``."""
    ext = user.ext
    us = int(now * 1_000_000)
    # The phones register with contact user 'gw+<ext>'; FreeSWITCH keeps it URL-escaped in the
    # channel name and destination (show channels prints 'gw%2B1000', events decode to 'gw+1000').
    name = f"sofia/internal/gw%2B{ext}@{DOMAIN}:5070"
    dest = f"gw%2B{ext}"
    eff_name = a.variables.get("effective_caller_id_name", a.profile.caller_id_name)
    eff_num = a.variables.get("effective_caller_id_number", a.profile.caller_id_number)
    profile = Profile("outbound", a.profile.username, eff_name, eff_num, dest, uuid, name, us,
                      orig_caller_id_name=a.profile.caller_id_name,
                      orig_caller_id_number=a.profile.caller_id_number,
                      callee_id_name="Outbound Call", callee_id_number=dest,
                      ani=a.profile.caller_id_number)
    b = Channel(uuid, name, "outbound", profile, ext, now, hit_dialplan=False, call_uuid=uuid,
                runs_dialplan=False, show_profile=True)
    b.presence_id = f"{ext}@{DOMAIN}"
    b.other_type = "originator"
    # The originator profile copied at originate time: times zeroed (capture 03 CHANNEL_OUTGOING).
    b.other_profile = a.profile.copy(created=0, answered=0, progress=0, callee_id_name=None,
                                     callee_id_number=None)
    b.initial = {"cid_name": eff_name, "cid_num": eff_num, "ip_addr": DOMAIN, "dest": dest}
    b.variables.update({
        "direction": "outbound", "is_outbound": "true", "uuid": uuid, "session_id": session_id,
        "sip_local_network_addr": DOMAIN, "sip_profile_name": "internal", "text_media_flow": "disabled",
        "channel_name": name,
        "sip_destination_url": f"sip:gw+{ext}@{DOMAIN}:5070;transport=udp;gw={ext}",
        "max_forwards": "69", "originator_codec": "PCMU@8000h@20i", "originator": a.uuid,
        "signal_bond": a.uuid, "call_uuid": a.uuid, "origination_uuid": uuid,
        "dialed_user": ext, "dialed_domain": DOMAIN, "sip_invite_domain": DOMAIN,
        "presence_id": b.presence_id, "originate_early_media": "true",
        "originating_leg_uuid": a.uuid, "originate_endpoint": "sofia",
        "rtp_use_codec_string": "PCMU@8000h@20i", "local_media_ip": DOMAIN, "local_media_port": "16404",
        "advertised_media_ip": DOMAIN, "audio_media_flow": "sendrecv", "video_media_flow": "inactive",
        "sip_outgoing_contact_uri": f"<sip:mod_sofia@{DOMAIN}:5060>",
        "sip_req_uri": f"gw+{ext}@{DOMAIN}:5070;transport=udp;gw={ext}", "sip_to_host": f"{DOMAIN}:5070",
        "sip_from_host": DOMAIN, "sip_nat_detected": "true", "sofia_profile_name": "internal",
        "recovery_profile_name": "internal", "sofia_profile_url": f"sip:mod_sofia@{DOMAIN}:5060",
    })
    return b


def outbound_answer_variables(b: Channel) -> dict[str, str]:
    """What the phone's 200 OK adds to the outbound leg."""
    return {
        "sip_reply_host": DOMAIN, "sip_reply_port": "5070", "sip_network_ip": DOMAIN,
        "sip_network_port": "5070", "sip_user_agent": USER_AGENT,
        "sip_from_display": b.profile.caller_id_name, "sip_from_user": b.profile.caller_id_number,
        "sip_full_from": f'"{b.profile.caller_id_name}" <sip:{b.profile.caller_id_number}@{DOMAIN}>',
        "sip_full_to": f"<sip:gw+{b.user}@{DOMAIN}:5070;transport=udp;gw={b.user}>",
        "sip_to_user": f"gw+{b.user}", "sip_to_host": DOMAIN, "sip_contact_user": f"gw+{b.user}",
        "sip_contact_uri": f"gw+{b.user}@{DOMAIN}:5070", "sip_call_id": new_uuid(), "switch_r_sdp": sdp(20128),
        "remote_media_ip": DOMAIN, "remote_media_port": "20128", "rtp_use_codec_name": "PCMU",
        "rtp_use_codec_rate": "8000", "rtp_use_codec_ptime": "20", "read_codec": "PCMU",
        "original_read_codec": "PCMU", "read_rate": "8000", "original_read_rate": "8000",
        "write_codec": "PCMU", "write_rate": "8000", "dtmf_type": "rfc2833",
    }


def originated_leg(user: User, uuid: str, params: dict[str, str], now: float, session_id: str) -> Channel:
    """The leg of ``originate {params}user/<ext> ...`` (no originating session), as captured in
    tests/fixtures/realfs-captures/help-request-*: caller ID from origination_caller_id_*, the {}
    variables on the channel, no originator, its own call uuid."""
    ext = user.ext
    us = int(now * 1_000_000)
    name = f"sofia/internal/gw%2B{ext}@{DOMAIN}:5070"
    dest = f"gw%2B{ext}"
    cid_name = params.get("origination_caller_id_name", "FreeSWITCH")
    cid_num = params.get("origination_caller_id_number", "0000000000")
    profile = Profile("outbound", "", cid_name, cid_num, dest, uuid, name, us, callee_id_name="Outbound Call",
                      callee_id_number=dest, ani=cid_num, source="src/switch_ivr_originate.c")
    b = Channel(uuid, name, "outbound", profile, ext, now, hit_dialplan=False, call_uuid=uuid,
                runs_dialplan=True, show_profile=True)
    b.presence_id = f"{ext}@{DOMAIN}"
    b.initial = {"cid_name": cid_name, "cid_num": cid_num, "ip_addr": DOMAIN, "dest": dest}
    b.variables.update({
        "direction": "outbound", "is_outbound": "true", "uuid": uuid, "call_uuid": uuid, "session_id": session_id,
        "sip_local_network_addr": DOMAIN, "sip_profile_name": "internal", "video_media_flow": "disabled",
        "text_media_flow": "disabled", "channel_name": name,
        "sip_destination_url": f"sip:gw+{ext}@{DOMAIN}:5070;transport=udp;gw={ext}",
    })
    b.variables.update(params)
    b.variables.update({
        "origination_uuid": uuid, "dialed_user": ext, "dialed_domain": DOMAIN, "sip_invite_domain": DOMAIN,
        "presence_id": b.presence_id, "originate_early_media": "true", "originate_endpoint": "sofia",
        "rtp_use_codec_string": "PCMU", "local_media_ip": DOMAIN, "local_media_port": "16404",
        "advertised_media_ip": DOMAIN, "audio_media_flow": "sendrecv",
        "sip_outgoing_contact_uri": f"<sip:mod_sofia@{DOMAIN}:5060>",
        "sip_req_uri": f"gw+{ext}@{DOMAIN}:5070;transport=udp;gw={ext}", "sip_to_host": f"{DOMAIN}:5070",
        "sip_from_host": DOMAIN, "sofia_profile_name": "internal", "recovery_profile_name": "internal",
        "sofia_profile_url": f"sip:mod_sofia@{DOMAIN}:5060",
    })
    return b


def originated_answer_variables(b: Channel, user: User) -> dict[str, str]:
    """What the phone's 200 OK and the user endpoint add to an originated leg (capture
    help-request-answered): the directory user's variables, originate_endpoint 'user'."""
    return {
        **outbound_answer_variables(b),
        "endpoint_disposition": "ANSWER", "record_stereo": "true", "user_context": "default",
        "effective_caller_id_name": user.effective_name, "effective_caller_id_number": user.ext,
        "callgroup": user.callgroup, "originate_endpoint": "user",
        "pre_transfer_caller_id_name": b.profile.caller_id_name,
        "pre_transfer_caller_id_number": b.profile.caller_id_number,
    }
