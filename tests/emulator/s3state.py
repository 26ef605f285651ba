"""Read-only access to moto's in-process S3 state, for the Beanstalk layer and the control endpoints."""

from moto.s3.models import s3_backends


def find_bucket(name):
    """moto's FakeBucket named `name` in whichever account holds it, or None."""
    location = s3_backends.bucket_accounts.get(name)
    if location is None:
        return None
    partition, account_id = location
    return s3_backends[account_id][partition].buckets.get(name)


def object_exists(bucket_name, key, region):
    """(exists, reason): whether `key` is a complete object in `bucket_name` located in `region`."""
    bucket = find_bucket(bucket_name)
    if bucket is None:
        return False, "NoSuchBucket"
    if bucket.region_name != region:
        return False, f"bucket is in {bucket.region_name}, not {region}"
    if key not in bucket.keys:
        return False, "Not Found"
    return True, None
