// TLS material for Conflux: a CA, node certificates, admin and client certificates, the SANs a
// StatefulSet pod needs, role checks for the admin API and the peer port, writing PEM bundles,
// and checking and hot-reloading the files a node serves with.

export { type CertBundle, type WrittenFile, writeCertBundle } from './bundle.js';
export { CertError, type CertErrorCode } from './errors.js';
export {
  ADMIN_ORGANIZATION,
  type CaOptions,
  type CertKeyPair,
  CLIENT_ORGANIZATION,
  type ClientCertOptions,
  generateAdminCert,
  generateCa,
  generateClientCert,
  generateNodeCert,
  NODE_ORGANIZATION,
  type NodeCertOptions,
  type Validity,
} from './generate.js';
export { peerIdentityProblem } from './peer-identity.js';
export {
  type ReloadOutcome,
  type TlsFilePaths,
  TlsReloader,
  type TlsReloaderOptions,
  type TlsReloadStatus,
} from './reload.js';
export {
  type CertificateInput,
  isAdminCertificate,
  isAuthorizedAdmin,
  isNodeCertificate,
  subjectOrganizations,
} from './roles.js';
export { type Sans, type StatefulSetSansOptions, statefulSetSans } from './sans.js';
export {
  type CertSummary,
  parseTlsMaterial,
  splitPemCertificates,
  type TlsMaterial,
} from './tls-material.js';
