binary = await ns.aconnect(server.url, timeout=10, binary_audio=True)
reply = await binary.aturn("hello")
raw = next(e for e in reply.events if e.type == "bidi_audio_delta")
based = next(e for e in turn.events if e.type == "bidi_audio_delta")
assert raw.payload is not None and raw.get("audio_bytes") == len(raw.audio)
print(f"binary frame: {len(raw.audio):,} bytes (audio_bytes={raw.get('audio_bytes')}); "
      f"as base64 text: {len(based.data['audio']):,} characters")
