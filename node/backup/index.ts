// Public surface of node/backup.
export {
  applyRetention,
  type BackupEntry,
  type BackupOptions,
  type BackupTarget,
  type DownloadedBackup,
  downloadBackup,
  lastBackup,
  listBackups,
  openStore,
  type RetentionPolicy,
  readBackupData,
  selectExpired,
  type UploadResult,
  uploadBackup,
} from './backup.js';
export { BackupError, type BackupProblem } from './errors.js';
export { type BackupManifest, type BackupMetadata, manifestSchema } from './manifest.js';
export { MIN_PART_BYTES } from './s3.js';
export {
  type BackupDestination,
  type FileDestination,
  formatUri,
  parseDestination,
  parseObjectUri,
  type S3ConnectionOptions,
  type S3Destination,
} from './uri.js';
