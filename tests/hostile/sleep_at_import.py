# hostile: sleep past every limit at import
# honest: 0
import time

time.sleep(3600)
