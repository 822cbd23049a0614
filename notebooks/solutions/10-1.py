fast = await loaded.areplay(fresh, timing="fast")
print(f"recorded {loaded.duration:.2f} s, fast replay {fast.duration:.2f} s")
loaded.diff(fast)
