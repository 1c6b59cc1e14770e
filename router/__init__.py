"""The SFU router: demux, ICE-lite, DTLS-SRTP, RTP/RTCP, forwarding, signaling and trunks."""
