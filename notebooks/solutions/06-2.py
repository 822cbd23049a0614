import tempfile
from pathlib import Path

path = Path(tempfile.gettempdir()) / "over.parquet"
over.to_parquet(path)
back = nbstream.LoadResult.read_parquet(path)
print(back.summary().equals(over.summary()), len(back.messages), "message rows")
