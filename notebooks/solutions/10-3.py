slower = nbstream.serve(nbstream.Agent(token_delay=0.03))
late = await loaded.areplay(slower)
loaded.diff(late)[["direction", "change", "type", "shift"]]
